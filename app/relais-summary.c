#define G_LOG_DOMAIN "relais-summary"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <cairo-pdf.h>
#include <pango/pangocairo.h>

#include "relais-dossier.h"
#include "relais-person.h"
#include "relais-summary.h"

/* The person's summary.  Its wording is written here in French on purpose,
 * not through gettext: the document belongs to the person, who reads
 * French, while the référent's program may run in another language.  The
 * labels of the reference tables are French msgids, read raw for the same
 * reason.  Only the errors, which the référent reads, are translated.
 *
 * relais_summary_new() turns the dossier into a list of blocks of Pango
 * markup (values escaped); relais_summary_paginate() lays each block out
 * and places its lines on pages; relais_summary_draw_page() draws the
 * placed lines.  Text is measured with unhinted metrics at 72 dpi, so one
 * unit is one point and the same pages come out on a PDF surface and on a
 * printer's. */

#define A4_WIDTH      595.276
#define A4_HEIGHT     841.890
#define MARGIN        50.0
#define FOOTER_SPACE  30.0     /* between the text and the bottom margin */
#define RULE_HEIGHT   12.0
#define LINE_SPACING  2.0
/* U+00A0: French puts a no-break space before ':'. */
#define COLON         "\u00a0:"
/* U+2028: a new line inside a paragraph, which keeps the bullet's hanging
 * indent. */
#define LINE_BREAK    "\u2028"

typedef enum {
  STYLE_TITLE,
  STYLE_NAME,
  STYLE_META,
  STYLE_RULE,
  STYLE_HEADING,
  STYLE_SUBHEADING,
  STYLE_DETAIL,
  STYLE_BODY,
  STYLE_BULLET,
  STYLE_COMMENT,
} Style;

static const struct {
  const char *font;
  double      size;            /* points */
  double      space_before;    /* points, dropped at the top of a page */
  double      indent;          /* points from the left margin */
  double      hanging;         /* points: lines after the first start here */
  gboolean    keep_with_next;  /* never the last thing on a page */
} styles[] = {
  [STYLE_TITLE]      = { "Sans Bold",   20.0,  0.0,  0.0,  0.0, TRUE },
  [STYLE_NAME]       = { "Sans Bold",   15.0, 16.0,  0.0,  0.0, TRUE },
  [STYLE_META]       = { "Sans",        11.0,  3.0,  0.0,  0.0, TRUE },
  [STYLE_RULE]       = { NULL,           0.0,  6.0,  0.0,  0.0, FALSE },
  [STYLE_HEADING]    = { "Sans Bold",   14.0, 18.0,  0.0,  0.0, TRUE },
  [STYLE_SUBHEADING] = { "Sans Bold",   11.5, 10.0,  0.0,  0.0, TRUE },
  [STYLE_DETAIL]     = { "Sans",        10.0,  1.0,  0.0,  0.0, TRUE },
  [STYLE_BODY]       = { "Sans",        11.0,  4.0,  0.0,  0.0, FALSE },
  [STYLE_BULLET]     = { "Sans",        11.0,  3.0, 10.0, 11.0, FALSE },
  [STYLE_COMMENT]    = { "Sans Italic", 11.0,  4.0, 10.0,  0.0, FALSE },
};

typedef struct {
  Style        style;
  char        *markup;
  /* From the last pagination: */
  PangoLayout *layout;         /* NULL for a rule */
  guint        n_lines;
  double      *line_top;       /* relative to the layout, points */
  double      *line_bottom;
  double      *line_baseline;
  double      *line_x;
} Block;

typedef struct {
  guint  block;
  guint  first;   /* lines [first, last) */
  guint  last;
  double y;       /* where line @first's top goes on the page */
} Placement;

struct _RelaisSummary {
  GPtrArray    *blocks;        /* Block */
  char         *footer;        /* the person's name and the document's date */
  PangoContext *context;
  GArray       *placements;    /* Placement, page after page */
  GArray       *page_starts;   /* guint: index of each page's first placement */
  double        width;
  double        height;
};

static void
block_clear_layout (Block *block)
{
  g_clear_object (&block->layout);
  g_clear_pointer (&block->line_top, g_free);
  g_clear_pointer (&block->line_bottom, g_free);
  g_clear_pointer (&block->line_baseline, g_free);
  g_clear_pointer (&block->line_x, g_free);
  block->n_lines = 0;
}

static void
block_free (Block *block)
{
  block_clear_layout (block);
  g_free (block->markup);
  g_free (block);
}

void
relais_summary_free (RelaisSummary *summary)
{
  if (summary == NULL)
    return;
  g_clear_pointer (&summary->blocks, g_ptr_array_unref);
  g_clear_pointer (&summary->placements, g_array_unref);
  g_clear_pointer (&summary->page_starts, g_array_unref);
  g_clear_object (&summary->context);
  g_free (summary->footer);
  g_free (summary);
}

/* ------------------------------------------------------------------------
 * French words
 * ------------------------------------------------------------------------ */

static const char * const months[] = {
  "janvier", "février", "mars", "avril", "mai", "juin", "juillet",
  "août", "septembre", "octobre", "novembre", "décembre",
};

/* Indexed by GDateWeekday: 1 is Monday. */
static const char * const weekdays[] = {
  NULL, "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
};

static gboolean
parse_digits (const char *text,
              guint       n,
              guint      *out)
{
  guint value = 0;

  for (guint i = 0; i < n; i++)
    {
      if (!g_ascii_isdigit (text[i]))
        return FALSE;
      value = value * 10 + (guint) (text[i] - '0');
    }
  *out = value;
  return TRUE;
}

char *
relais_summary_format_date (const char *date,
                            gboolean    weekday)
{
  guint year, month, day;
  g_autoptr(GDate) parsed = NULL;

  if (date == NULL || strlen (date) < 10 || date[4] != '-' || date[7] != '-' ||
      !parse_digits (date, 4, &year) || !parse_digits (date + 5, 2, &month) ||
      !parse_digits (date + 8, 2, &day) ||
      !g_date_valid_dmy ((GDateDay) day, (GDateMonth) month, (GDateYear) year))
    return NULL;

  parsed = g_date_new_dmy ((GDateDay) day, (GDateMonth) month, (GDateYear) year);
  return g_strdup_printf ("%s%s%u%s %s %u",
                          weekday ? weekdays[g_date_get_weekday (parsed)] : "",
                          weekday ? " " : "",
                          day, day == 1 ? "er" : "",
                          months[month - 1], year);
}

/* "mardi 1er décembre 2026 à 14 h 30" from "2026-12-01 14:30". */
static char *
format_date_time (const char *at)
{
  g_autofree char *date = NULL;
  guint hour, minute;

  date = relais_summary_format_date (at, TRUE);
  if (date == NULL)
    return g_strdup (at);
  if (strlen (at) < 16 || !parse_digits (at + 11, 2, &hour) || !parse_digits (at + 14, 2, &minute))
    return g_steal_pointer (&date);
  if (minute == 0)
    return g_strdup_printf ("%s à %u h", date, hour);
  return g_strdup_printf ("%s à %u h %02u", date, hour, minute);
}

/* A date for the text, or the raw value if it is not one. */
static char *
format_date_or_raw (const char *date)
{
  char *text = relais_summary_format_date (date, FALSE);

  return text != NULL ? text : g_strdup (date);
}

/* The French label of @key: the table's msgid itself, untranslated. */
static const char *
label (const RelaisChoice *choices,
       const char         *key)
{
  if (key == NULL)
    return NULL;
  for (; choices != NULL && choices->key != NULL; choices++)
    if (strcmp (choices->key, key) == 0)
      return choices->label;
  return key;
}

/* A status label in the middle of a sentence: "planifiée". */
static char *
label_down (const RelaisChoice *choices,
            const char         *key)
{
  const char *text = label (choices, key);

  return text != NULL ? g_utf8_strdown (text, -1) : NULL;
}

static char *
labels_joined (const RelaisChoice *choices,
               char              **keys)
{
  g_autoptr(GString) text = g_string_new (NULL);

  for (guint i = 0; keys != NULL && keys[i] != NULL; i++)
    {
      if (i > 0)
        g_string_append (text, ", ");
      g_string_append (text, label (choices, keys[i]));
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static gboolean
is_empty (const char *text)
{
  return text == NULL || *text == '\0';
}

/* ------------------------------------------------------------------------
 * Building the blocks
 * ------------------------------------------------------------------------ */

static void
add_markup (RelaisSummary *self,
            Style          style,
            char          *markup)
{
  Block *block = g_new0 (Block, 1);

  block->style = style;
  block->markup = markup;
  g_ptr_array_add (self->blocks, block);
}

/* Adds a block of plain text. */
static void
add_text (RelaisSummary *self,
          Style          style,
          const char    *text)
{
  add_markup (self, style, g_markup_escape_text (text, -1));
}

/* Adds "• Label : value". */
static void
add_field (RelaisSummary *self,
           const char    *name,
           const char    *value)
{
  if (is_empty (value))
    return;
  add_markup (self, STYLE_BULLET,
              g_markup_printf_escaped ("•\u2002%s" COLON " %s", name, value));
}

static void
build_identity (RelaisSummary      *self,
                const RelaisPerson *person,
                const char         *today,
                const char         *author)
{
  g_autofree char *last = g_utf8_strup (person->last_name ? person->last_name : "", -1);
  g_autofree char *name = g_strdup_printf ("%s %s", person->first_name ? person->first_name : "", last);
  g_autofree char *birth = format_date_or_raw (person->birth_date);

  g_strstrip (name);
  add_text (self, STYLE_TITLE, "Votre parcours — restitution");
  add_text (self, STYLE_NAME, name);
  if (birth != NULL)
    add_markup (self, STYLE_META, g_markup_printf_escaped ("Date de naissance" COLON " %s", birth));
  if (!is_empty (author))
    add_markup (self, STYLE_META,
                g_markup_printf_escaped ("Document remis le %s par %s", today, author));
  else
    add_markup (self, STYLE_META, g_markup_printf_escaped ("Document remis le %s", today));
  add_markup (self, STYLE_RULE, g_strdup (""));

  self->footer = g_strdup_printf ("%s — restitution du %s", name, today);
}

static void
build_situation (RelaisSummary         *self,
                 const RelaisSituation *situation,
                 GPtrArray             *contracts)
{
  guint before = self->blocks->len;
  g_autofree char *rights = labels_joined (relais_rights, situation->rights);

  add_text (self, STYLE_HEADING, "Votre situation");
  add_field (self, "Droits", rights);
  add_field (self, "Niveau de formation", label (relais_education_levels, situation->education_level));
  add_field (self, "Situation professionnelle", label (relais_work_situations, situation->work_situation));

  for (guint i = 0; i < contracts->len; i++)
    {
      RelaisContract *contract = g_ptr_array_index (contracts, i);
      g_autoptr(GString) text = g_string_new (label (relais_contract_kinds, contract->kind));

      if (!is_empty (contract->signed_on))
        {
          g_autofree char *date = format_date_or_raw (contract->signed_on);
          g_string_append_printf (text, ", signé le %s", date);
        }
      if (!is_empty (contract->starts_on) && !is_empty (contract->ends_on))
        {
          g_autofree char *from = format_date_or_raw (contract->starts_on);
          g_autofree char *to = format_date_or_raw (contract->ends_on);
          g_string_append_printf (text, ", du %s au %s", from, to);
        }
      else if (!is_empty (contract->starts_on))
        {
          g_autofree char *from = format_date_or_raw (contract->starts_on);
          g_string_append_printf (text, ", à partir du %s", from);
        }
      else if (!is_empty (contract->ends_on))
        {
          g_autofree char *to = format_date_or_raw (contract->ends_on);
          g_string_append_printf (text, ", jusqu’au %s", to);
        }
      add_field (self, "Contrat", text->str);
    }

  if (!is_empty (situation->sharing_informed_on))
    {
      g_autofree char *date = format_date_or_raw (situation->sharing_informed_on);
      g_autofree char *text = g_strdup_printf ("le %s", date);
      add_field (self, "Informé(e) du partage de vos données", text);
    }

  if (self->blocks->len == before + 1)
    add_text (self, STYLE_BODY, "Pas encore renseignée.");
}

/* Themes never assessed, or marked as not discussed, tell the person
 * nothing: they are left out. */
static gboolean
is_assessed (const RelaisDiagnostic *diagnostic)
{
  return diagnostic->level != NULL && strcmp (diagnostic->level, "non-aborde") != 0;
}

static void
build_diagnostic (RelaisSummary *self,
                  GPtrArray     *diagnostics)
{
  guint shown = 0;

  add_text (self, STYLE_HEADING, "Diagnostic");
  for (guint i = 0; i < diagnostics->len; i++)
    {
      RelaisDiagnostic *diagnostic = g_ptr_array_index (diagnostics, i);
      const RelaisChoice *situations = relais_theme_situations (diagnostic->theme);

      if (!is_assessed (diagnostic))
        continue;
      shown++;
      add_markup (self, STYLE_SUBHEADING,
                  g_markup_printf_escaped ("%s — %s",
                                           label (relais_themes, diagnostic->theme),
                                           label (relais_diagnostic_levels, diagnostic->level)));
      for (guint s = 0; diagnostic->situations[s] != NULL; s++)
        add_markup (self, STYLE_BULLET,
                    g_markup_printf_escaped ("•\u2002%s", label (situations, diagnostic->situations[s])));
      if (!is_empty (diagnostic->comment))
        add_text (self, STYLE_COMMENT, diagnostic->comment);
    }
  if (shown == 0)
    add_text (self, STYLE_BODY, "Aucun thème n’a encore été abordé.");
}

static void
build_plan (RelaisSummary *self,
            GPtrArray     *objectives,
            GPtrArray     *actions)
{
  add_text (self, STYLE_HEADING, "Votre plan d’action");
  if (objectives->len == 0)
    add_text (self, STYLE_BODY, "Aucun objectif n’a encore été fixé.");

  for (guint i = 0; i < objectives->len; i++)
    {
      RelaisObjective *objective = g_ptr_array_index (objectives, i);
      g_autofree char *status = label_down (relais_objective_statuses, objective->status);
      guint n_actions = 0;

      add_text (self, STYLE_SUBHEADING, objective->text);
      add_markup (self, STYLE_DETAIL,
                  g_markup_printf_escaped ("Thème" COLON " %s · objectif %s",
                                           label (relais_themes, objective->theme),
                                           status != NULL ? status : ""));

      /* relais_action_list() sorts by due date: the order to act in. */
      for (guint a = 0; a < actions->len; a++)
        {
          RelaisAction *action = g_ptr_array_index (actions, a);
          g_autofree char *action_status = NULL;
          g_autoptr(GString) detail = NULL;

          if (g_strcmp0 (action->objective, objective->id) != 0)
            continue;
          n_actions++;
          action_status = label_down (relais_action_statuses, action->status);
          detail = g_string_new (NULL);
          g_string_append_printf (detail, "Statut" COLON " %s", action_status != NULL ? action_status : "");
          if (action->late)
            g_string_append (detail, " (en retard)");
          if (!is_empty (action->due))
            {
              g_autofree char *due = format_date_or_raw (action->due);
              g_string_append_printf (detail, " · échéance" COLON " %s", due);
            }
          if (!is_empty (action->carrier))
            g_string_append_printf (detail, " · avec" COLON " %s", action->carrier);

          add_markup (self, STYLE_BULLET,
                      g_markup_printf_escaped ("•\u2002%s" LINE_BREAK "<span size=\"10240\">%s</span>",
                                               action->text, detail->str));
        }
      if (n_actions == 0)
        add_text (self, STYLE_BULLET, "Pas encore d’action prévue.");
    }
}

static void
build_projects (RelaisSummary *self,
                GPtrArray     *projects)
{
  add_text (self, STYLE_HEADING, "Votre projet professionnel");
  if (projects->len == 0)
    add_text (self, STYLE_BODY, "Pas encore défini.");

  for (guint i = 0; i < projects->len; i++)
    {
      RelaisProject *project = g_ptr_array_index (projects, i);
      g_autofree char *contract_types = labels_joined (relais_contract_types, project->contract_types);
      g_autofree char *working_time = label_down (relais_working_times, project->working_time);

      if (!is_empty (project->rome_code))
        add_markup (self, STYLE_SUBHEADING,
                    g_markup_printf_escaped ("%s <span weight=\"normal\">(code ROME %s)</span>",
                                             project->job_label, project->rome_code));
      else
        add_text (self, STYLE_SUBHEADING, project->job_label);
      if (project->mobility_km >= 0)
        {
          g_autofree char *km = g_strdup_printf ("jusqu’à %d km", project->mobility_km);
          add_field (self, "Mobilité", km);
        }
      add_field (self, "Contrats recherchés", contract_types);
      add_field (self, "Temps de travail", working_time);
    }
}

static void
build_appointment (RelaisSummary           *self,
                   const RelaisAppointment *next)
{
  g_autofree char *when = NULL;

  add_text (self, STYLE_HEADING, "Votre prochain rendez-vous");
  if (next == NULL)
    {
      add_text (self, STYLE_BODY, "Aucun rendez-vous prévu.");
      return;
    }
  when = format_date_time (next->at);
  add_markup (self, STYLE_BODY, g_markup_printf_escaped ("<b>Le %s</b>", when));
  add_field (self, "Avec", next->with_whom);
  add_field (self, "Lieu", next->place);
}

static void
build_closing (RelaisSummary *self,
               const char    *author)
{
  add_markup (self, STYLE_RULE, g_strdup (""));
  add_text (self, STYLE_BODY,
            "Ce document reprend ce que nous avons construit ensemble. Vous pouvez "
            "consulter les informations qui vous concernent et demander à les corriger "
            "auprès de votre référent.");
  if (!is_empty (author))
    add_markup (self, STYLE_BODY, g_markup_printf_escaped ("Votre référent" COLON " %s", author));
}

RelaisSummary *
relais_summary_new (RelaisVault  *vault,
                    const char   *dossier,
                    GError      **error)
{
  g_autoptr(RelaisSummary) self = NULL;
  g_autoptr(RelaisPerson) person = NULL;
  g_autoptr(RelaisSituation) situation = NULL;
  g_autoptr(GPtrArray) diagnostics = NULL;
  g_autoptr(GPtrArray) objectives = NULL;
  g_autoptr(GPtrArray) actions = NULL;
  g_autoptr(GPtrArray) projects = NULL;
  g_autoptr(GPtrArray) contracts = NULL;
  g_autoptr(RelaisAppointment) next = NULL;
  g_autoptr(GDateTime) now = NULL;
  g_autofree char *iso_today = NULL;
  g_autofree char *today = NULL;
  GError *local_error = NULL;
  const char *author;

  g_return_val_if_fail (vault != NULL, NULL);
  g_return_val_if_fail (dossier != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  person = relais_person_get (vault, dossier, error);
  if (person == NULL)
    return NULL;
  now = g_date_time_new_now_local ();
  iso_today = g_date_time_format (now, "%Y-%m-%d");

  situation = relais_situation_get (vault, dossier, &local_error);
  if (local_error == NULL)
    diagnostics = relais_diagnostic_list (vault, dossier, &local_error);
  if (local_error == NULL)
    objectives = relais_objective_list (vault, dossier, &local_error);
  if (local_error == NULL)
    actions = relais_action_list (vault, dossier, iso_today, &local_error);
  if (local_error == NULL)
    projects = relais_project_list (vault, dossier, &local_error);
  if (local_error == NULL)
    contracts = relais_contract_list (vault, dossier, &local_error);
  if (local_error == NULL)
    next = relais_appointment_next (vault, dossier, NULL, &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return NULL;
    }

  self = g_new0 (RelaisSummary, 1);
  self->blocks = g_ptr_array_new_with_free_func ((GDestroyNotify) block_free);
  self->placements = g_array_new (FALSE, FALSE, sizeof (Placement));
  self->page_starts = g_array_new (FALSE, FALSE, sizeof (guint));

  today = relais_summary_format_date (iso_today, FALSE);
  author = relais_vault_get_author (vault);
  build_identity (self, person, today, author);
  build_situation (self, situation, contracts);
  build_diagnostic (self, diagnostics);
  build_plan (self, objectives, actions);
  build_projects (self, projects);
  build_appointment (self, next);
  build_closing (self, author);

  return g_steal_pointer (&self);
}

/* ------------------------------------------------------------------------
 * Pagination
 * ------------------------------------------------------------------------ */

static double
content_width (RelaisSummary *self)
{
  return self->width - 2 * MARGIN;
}

static double
content_bottom (RelaisSummary *self)
{
  return self->height - MARGIN - FOOTER_SPACE;
}

static void
block_layout (RelaisSummary *self,
              Block         *block)
{
  g_autoptr(PangoFontDescription) font = NULL;
  PangoLayoutIter *iter;
  guint i = 0;

  block_clear_layout (block);
  if (block->style == STYLE_RULE)
    {
      block->n_lines = 1;
      block->line_top = g_new0 (double, 1);
      block->line_bottom = g_new (double, 1);
      block->line_baseline = g_new (double, 1);
      block->line_x = g_new0 (double, 1);
      block->line_bottom[0] = RULE_HEIGHT;
      block->line_baseline[0] = RULE_HEIGHT / 2;
      return;
    }

  font = pango_font_description_from_string (styles[block->style].font);
  pango_font_description_set_size (font, (int) (styles[block->style].size * PANGO_SCALE));
  block->layout = pango_layout_new (self->context);
  pango_layout_set_font_description (block->layout, font);
  pango_layout_set_wrap (block->layout, PANGO_WRAP_WORD_CHAR);
  pango_layout_set_spacing (block->layout, pango_units_from_double (LINE_SPACING));
  pango_layout_set_width (block->layout,
                          pango_units_from_double (content_width (self) - styles[block->style].indent));
  if (styles[block->style].hanging > 0)
    pango_layout_set_indent (block->layout, -pango_units_from_double (styles[block->style].hanging));
  pango_layout_set_markup (block->layout, block->markup, -1);

  block->n_lines = (guint) pango_layout_get_line_count (block->layout);
  block->line_top = g_new (double, block->n_lines);
  block->line_bottom = g_new (double, block->n_lines);
  block->line_baseline = g_new (double, block->n_lines);
  block->line_x = g_new (double, block->n_lines);

  iter = pango_layout_get_iter (block->layout);
  do
    {
      PangoRectangle logical;
      int top, bottom;

      pango_layout_iter_get_line_yrange (iter, &top, &bottom);
      pango_layout_iter_get_line_extents (iter, NULL, &logical);
      block->line_top[i] = pango_units_to_double (top);
      block->line_bottom[i] = pango_units_to_double (bottom);
      block->line_baseline[i] = pango_units_to_double (pango_layout_iter_get_baseline (iter));
      block->line_x[i] = pango_units_to_double (logical.x);
      i++;
    }
  while (i < block->n_lines && pango_layout_iter_next_line (iter));
  pango_layout_iter_free (iter);
  block->n_lines = i;
}

static double
lines_height (const Block *block,
              guint        first,
              guint        last)
{
  return block->line_bottom[last - 1] - block->line_top[first];
}

/* How many lines from @first fit in @room points. */
static guint
lines_fitting (const Block *block,
               guint        first,
               double       room)
{
  guint n = 0;

  while (first + n < block->n_lines && lines_height (block, first, first + n + 1) <= room)
    n++;
  return n;
}

/* The room a block marked keep_with_next needs on its page: itself, the
 * following kept blocks and two lines of the first one not kept. */
static double
room_to_keep (RelaisSummary *self,
              guint          index)
{
  double need = 0;

  for (guint i = index; i < self->blocks->len; i++)
    {
      Block *block = g_ptr_array_index (self->blocks, i);
      gboolean keep = styles[block->style].keep_with_next;
      guint lines = keep ? block->n_lines : MIN (2, block->n_lines);

      if (i > index)
        need += styles[block->style].space_before;
      need += lines_height (block, 0, lines);
      if (!keep)
        break;
    }
  return need;
}

static void
place (RelaisSummary *self,
       guint          block,
       guint          first,
       guint          last,
       double         y)
{
  Placement placement = { block, first, last, y };

  g_array_append_val (self->placements, placement);
}

static void
new_page (RelaisSummary *self,
          double        *y)
{
  guint start = self->placements->len;

  g_array_append_val (self->page_starts, start);
  *y = MARGIN;
}

guint
relais_summary_paginate (RelaisSummary *self,
                         cairo_t       *cr,
                         double         width,
                         double         height)
{
  cairo_font_options_t *options;
  double bottom;
  double y;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (cr != NULL, 0);
  g_return_val_if_fail (width > 2 * MARGIN && height > 2 * MARGIN + FOOTER_SPACE, 0);

  self->width = width;
  self->height = height;
  g_clear_object (&self->context);
  self->context = pango_cairo_create_context (cr);
  /* Points, and metrics that do not depend on the device: the printer's
   * pages are the PDF's pages. */
  pango_cairo_context_set_resolution (self->context, 72.0);
  options = cairo_font_options_create ();
  cairo_font_options_set_hint_metrics (options, CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_hint_style (options, CAIRO_HINT_STYLE_NONE);
  pango_cairo_context_set_font_options (self->context, options);
  cairo_font_options_destroy (options);
  pango_context_set_language (self->context, pango_language_from_string ("fr-FR"));
  pango_context_set_base_dir (self->context, PANGO_DIRECTION_LTR);

  for (guint i = 0; i < self->blocks->len; i++)
    block_layout (self, g_ptr_array_index (self->blocks, i));

  g_array_set_size (self->placements, 0);
  g_array_set_size (self->page_starts, 0);
  bottom = content_bottom (self);
  new_page (self, &y);

  for (guint i = 0; i < self->blocks->len; i++)
    {
      Block *block = g_ptr_array_index (self->blocks, i);
      double space_before = styles[block->style].space_before;
      guint first = 0;

      if (styles[block->style].keep_with_next && y > MARGIN &&
          y + space_before + room_to_keep (self, i) > bottom)
        new_page (self, &y);

      while (first < block->n_lines)
        {
          gboolean at_top = y <= MARGIN;
          double start = at_top ? y : y + space_before;
          guint remaining = block->n_lines - first;
          guint fit = lines_fitting (block, first, bottom - start);
          guint take;

          if (fit >= remaining)
            {
              place (self, i, first, block->n_lines, start);
              y = start + lines_height (block, first, block->n_lines);
              break;
            }
          if (!at_top)
            {
              /* Split a long paragraph, leaving at least two lines on
               * each side; move a short one whole. */
              take = remaining >= 4 ? MIN (fit, remaining - 2) : 0;
              if (take >= 2)
                {
                  place (self, i, first, first + take, start);
                  first += take;
                }
              new_page (self, &y);
              continue;
            }
          /* Taller than a page. */
          take = MAX (fit, 1);
          place (self, i, first, first + take, start);
          first += take;
          new_page (self, &y);
        }
    }

  return self->page_starts->len;
}

guint
relais_summary_get_n_pages (RelaisSummary *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->page_starts->len;
}

/* ------------------------------------------------------------------------
 * Drawing
 * ------------------------------------------------------------------------ */

static PangoLayout *
footer_layout (RelaisSummary *self,
               const char    *text)
{
  g_autoptr(PangoFontDescription) font = pango_font_description_from_string ("Sans 9");
  PangoLayout *layout = pango_layout_new (self->context);

  pango_layout_set_font_description (layout, font);
  pango_layout_set_text (layout, text, -1);
  return layout;
}

static void
draw_rule (cairo_t *cr,
           double   x0,
           double   x1,
           double   y)
{
  cairo_set_line_width (cr, 0.6);
  cairo_move_to (cr, x0, y);
  cairo_line_to (cr, x1, y);
  cairo_stroke (cr);
}

static void
draw_footer (RelaisSummary *self,
             cairo_t       *cr,
             guint          page)
{
  g_autofree char *number = g_strdup_printf ("%u / %u", page + 1, self->page_starts->len);
  g_autoptr(PangoLayout) right = footer_layout (self, number);
  g_autoptr(PangoLayout) left = footer_layout (self, self->footer);
  double top = self->height - MARGIN - FOOTER_SPACE / 2;
  PangoRectangle extents;

  draw_rule (cr, MARGIN, self->width - MARGIN, top - 4);

  pango_layout_get_extents (right, NULL, &extents);
  cairo_move_to (cr, self->width - MARGIN - pango_units_to_double (extents.width), top);
  pango_cairo_show_layout (cr, right);

  /* The name can be long: it never runs into the page number. */
  pango_layout_set_width (left, pango_units_from_double (content_width (self)
                                                         - pango_units_to_double (extents.width) - 24));
  pango_layout_set_ellipsize (left, PANGO_ELLIPSIZE_END);
  cairo_move_to (cr, MARGIN, top);
  pango_cairo_show_layout (cr, left);
}

void
relais_summary_draw_page (RelaisSummary *self,
                          cairo_t       *cr,
                          guint          page)
{
  guint start, end;

  g_return_if_fail (self != NULL);
  g_return_if_fail (cr != NULL);
  g_return_if_fail (self->context != NULL);
  g_return_if_fail (page < self->page_starts->len);

  start = g_array_index (self->page_starts, guint, page);
  end = page + 1 < self->page_starts->len ? g_array_index (self->page_starts, guint, page + 1)
                                           : self->placements->len;

  cairo_save (cr);
  /* The lines were measured for this transformation; a printer's context
   * may come with another target, which only changes the rendering. */
  pango_cairo_update_context (cr, self->context);
  cairo_set_source_rgb (cr, 0, 0, 0);

  for (guint p = start; p < end; p++)
    {
      const Placement *placement = &g_array_index (self->placements, Placement, p);
      const Block *block = g_ptr_array_index (self->blocks, placement->block);
      double x = MARGIN + styles[block->style].indent;

      if (block->layout == NULL)
        {
          draw_rule (cr, MARGIN, self->width - MARGIN, placement->y + block->line_baseline[0]);
          continue;
        }
      for (guint l = placement->first; l < placement->last; l++)
        {
          cairo_move_to (cr, x + block->line_x[l],
                         placement->y + block->line_baseline[l] - block->line_top[placement->first]);
          pango_cairo_show_layout_line (cr, pango_layout_get_line_readonly (block->layout, (int) l));
        }
    }

  draw_footer (self, cr, page);
  cairo_restore (cr);
}

/* ------------------------------------------------------------------------
 * PDF
 * ------------------------------------------------------------------------ */

typedef struct {
  int fd;
  int saved_errno;
} Sink;

static cairo_status_t
sink_write (void                *closure,
            const unsigned char *data,
            unsigned int         length)
{
  Sink *sink = closure;

  while (length > 0)
    {
      ssize_t written = write (sink->fd, data, length);

      if (written < 0 && errno == EINTR)
        continue;
      if (written <= 0)
        {
          sink->saved_errno = written < 0 ? errno : EIO;
          return CAIRO_STATUS_WRITE_ERROR;
        }
      data += written;
      length -= (unsigned int) written;
    }
  return CAIRO_STATUS_SUCCESS;
}

gboolean
relais_summary_write_pdf (RelaisSummary  *self,
                          const char     *path,
                          GError        **error)
{
  Sink sink = { -1, 0 };
  cairo_surface_t *surface;
  cairo_status_t status;
  cairo_t *cr;
  guint n_pages;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Straight to @path: a temporary file would be one more copy of the
   * person's data on the disk. */
  sink.fd = g_open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (sink.fd < 0)
    {
      int saved_errno = errno;

      /* The path is left out: it may well carry the person's name. */
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Could not write the PDF: %s"), g_strerror (saved_errno));
      return FALSE;
    }

  surface = cairo_pdf_surface_create_for_stream (sink_write, &sink, A4_WIDTH, A4_HEIGHT);
  cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_TITLE, "Votre parcours — restitution");
  cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_CREATOR, "Relais");
  cr = cairo_create (surface);
  n_pages = relais_summary_paginate (self, cr, A4_WIDTH, A4_HEIGHT);
  for (guint page = 0; page < n_pages; page++)
    {
      relais_summary_draw_page (self, cr, page);
      cairo_show_page (cr);
    }
  status = cairo_status (cr);
  cairo_destroy (cr);
  cairo_surface_finish (surface);
  if (status == CAIRO_STATUS_SUCCESS)
    status = cairo_surface_status (surface);
  cairo_surface_destroy (surface);

  if (status == CAIRO_STATUS_SUCCESS && close (sink.fd) != 0 && errno != EINTR)
    {
      sink.saved_errno = errno;
      status = CAIRO_STATUS_WRITE_ERROR;
    }
  else if (status != CAIRO_STATUS_SUCCESS)
    close (sink.fd);

  if (status != CAIRO_STATUS_SUCCESS)
    {
      g_unlink (path);
      if (sink.saved_errno != 0)
        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (sink.saved_errno),
                     _("Could not write the PDF: %s"), g_strerror (sink.saved_errno));
      else
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                     _("Could not write the PDF: %s"), cairo_status_to_string (status));
      return FALSE;
    }
  return TRUE;
}
