#define G_LOG_DOMAIN "relaisctl"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gi18n.h>
#include <json-glib/json-glib.h>

#include "relais-i18n.h"
#include "relais-dossier.h"
#include "relais-import.h"
#include "relais-json.h"
#include "relais-person.h"
#include "relais-summary.h"
#include "relais-vault.h"
#include "relaisctl-sync.h"
#include "relais-sync-engine.h"

/*
 * relaisctl: the vault from the shell.  Exit status 0 on success, 1 on a
 * refusal or bad input with one clear line on stderr.  Messages never
 * contain personal data: values go to stdout only when asked for.
 */

#define PASSPHRASE_MAX 1024

typedef struct {
  char     *vault_dir;
  char     *passphrase_file;
} Globals;

static Globals globals;

static GOptionEntry global_entries[] = {
  { "vault", 0, 0, G_OPTION_ARG_FILENAME, &globals.vault_dir,
    N_("Vault directory (default: $XDG_DATA_HOME/relais)"), N_("DIR") },
  { "passphrase-file", 0, 0, G_OPTION_ARG_FILENAME, &globals.passphrase_file,
    N_("Read the passphrase from the first line of FILE"), N_("FILE") },
  { NULL }
};

static int
fail (const char *format,
      ...) G_GNUC_PRINTF (1, 2);

static int
fail (const char *format,
      ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  /* One line: the first line of the message, the rest (e.g. bad CSV rows)
   * follows indented. */
  g_printerr ("relaisctl: %s\n", message);
  return 1;
}

static int
fail_error (GError *error)
{
  return fail ("%s", error->message);
}

/* The end of every command that makes a record: its id alone on stdout,
 * or the error. */
static int
print_new_id (const char *id,
              GError     *error)
{
  if (id == NULL)
    return fail_error (error);
  g_print ("%s\n", id);
  return 0;
}

static const char *
vault_dir (void)
{
  static char *fallback;

  if (globals.vault_dir != NULL)
    return globals.vault_dir;
  if (fallback == NULL)
    fallback = relais_vault_default_dir ();
  return fallback;
}

/* Secrets */

typedef struct {
  char *text;   /* sodium_malloc, NUL-terminated */
} Secret;

static Secret *
secret_new (void)
{
  Secret *secret = g_new0 (Secret, 1);

  secret->text = sodium_malloc (PASSPHRASE_MAX + 1);
  g_assert (secret->text != NULL);
  secret->text[0] = '\0';
  return secret;
}

static void
secret_free (Secret *secret)
{
  if (secret == NULL)
    return;
  sodium_free (secret->text);
  g_free (secret);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Secret, secret_free)

static void
chomp (char *text)
{
  gsize len = strlen (text);

  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
    text[--len] = '\0';
}

/* Takes a secret from the environment and wipes it there, so that it does
 * not linger in this process's memory or reach its children. */
static gboolean
secret_from_env (Secret     *secret,
                 const char *name)
{
  char *value = getenv (name);
  gsize len;

  if (value == NULL)
    return FALSE;
  len = strlen (value);
  g_strlcpy (secret->text, value, PASSPHRASE_MAX + 1);
  sodium_memzero (value, len);
  unsetenv (name);
  return TRUE;
}

static gboolean
secret_from_file (Secret      *secret,
                  const char  *path,
                  GError     **error)
{
  FILE *file = fopen (path, "re");
  gboolean ok;

  if (file == NULL)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   _("Could not read the passphrase file %s: %s"), path, g_strerror (errno));
      return FALSE;
    }
  setvbuf (file, NULL, _IONBF, 0);
  ok = fgets (secret->text, PASSPHRASE_MAX + 1, file) != NULL;
  fclose (file);
  if (!ok)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   _("The passphrase file %s is empty"), path);
      return FALSE;
    }
  chomp (secret->text);
  return TRUE;
}

/* Asks on the terminal without echo. */
static gboolean
secret_from_prompt (Secret      *secret,
                    const char  *prompt,
                    GError     **error)
{
  struct termios saved, quiet;
  FILE *tty = fopen ("/dev/tty", "r+e");
  gboolean ok;

  if (tty == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                           _("No passphrase: set RELAIS_PASSPHRASE, use --passphrase-file, or run in a terminal"));
      return FALSE;
    }
  setvbuf (tty, NULL, _IONBF, 0);
  fputs (prompt, tty);
  tcgetattr (fileno (tty), &saved);
  quiet = saved;
  quiet.c_lflag &= ~(tcflag_t) ECHO;
  quiet.c_lflag |= ECHONL;
  tcsetattr (fileno (tty), TCSAFLUSH, &quiet);
  ok = fgets (secret->text, PASSPHRASE_MAX + 1, tty) != NULL;
  tcsetattr (fileno (tty), TCSAFLUSH, &saved);
  fclose (tty);
  if (!ok)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, _("No passphrase given"));
      return FALSE;
    }
  chomp (secret->text);
  return TRUE;
}

static Secret *
get_passphrase (gboolean   twice,
                GError   **error)
{
  g_autoptr(Secret) secret = secret_new ();

  if (globals.passphrase_file != NULL)
    {
      if (!secret_from_file (secret, globals.passphrase_file, error))
        return NULL;
    }
  else if (!secret_from_env (secret, "RELAIS_PASSPHRASE"))
    {
      if (!secret_from_prompt (secret, twice ? _("New passphrase: ") : _("Passphrase: "), error))
        return NULL;
      if (twice)
        {
          g_autoptr(Secret) again = secret_new ();

          if (!secret_from_prompt (again, _("Passphrase again: "), error))
            return NULL;
          if (strcmp (secret->text, again->text) != 0)
            {
              g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                                   _("The two passphrases differ"));
              return NULL;
            }
        }
    }

  if (secret->text[0] == '\0')
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("The passphrase is empty"));
      return NULL;
    }
  return g_steal_pointer (&secret);
}

static RelaisVault *
open_vault (GError **error)
{
  g_autoptr(Secret) passphrase = get_passphrase (FALSE, error);

  if (passphrase == NULL)
    return NULL;
  return relais_vault_open (vault_dir (), passphrase->text, NULL, error);
}

/* Options */

static gboolean
parse_options (int           *argc,
               char        ***argv,
               const char    *usage,
               const char    *summary,
               GOptionEntry  *entries,
               GError       **error)
{
  g_autoptr(GOptionContext) context = g_option_context_new (usage);

  /* GOption translates the usage, the summary and the options' texts
   * itself: they are marked with N_() only. */
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, summary);
  g_option_context_add_main_entries (context, global_entries, GETTEXT_PACKAGE);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  return g_option_context_parse (context, argc, argv, error);
}

/* Commands */

typedef struct {
  const char *name;
  int       (*run) (int argc, char **argv);
} Subcommand;

/* Runs the sub-command named by argv[1] (argv[0] is the group's name), or
 * refuses with @usage, which lists them. */
static int
run_subcommand (const Subcommand *commands,
                const char       *usage,
                int               argc,
                char            **argv)
{
  for (const Subcommand *c = commands; argc > 1 && c->name != NULL; c++)
    if (g_str_equal (argv[1], c->name))
      return c->run (argc - 1, argv + 1);
  return fail ("%s", _(usage));
}



static int
cmd_init (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Secret) passphrase = NULL;
  g_autofree char *recovery = NULL;
  RelaisKdfParams test_kdf;
  RelaisVaultOptions options = { 0 };
  RelaisVault *vault;

  if (!parse_options (&argc, &argv, "", N_("Create a vault and print its recovery key once."), NULL, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("init takes no argument"));

  /* Only for test suites that create hundreds of vaults: a weak KDF must
   * never protect real data, so it is loud about it. */
  if (g_strcmp0 (g_getenv ("RELAIS_TEST_FAST_KDF"), "1") == 0)
    {
      relais_kdf_params_insecure_for_tests (&test_kdf);
      options.kdf = &test_kdf;
    }

  passphrase = get_passphrase (TRUE, &error);
  if (passphrase == NULL)
    return fail_error (error);

  vault = relais_vault_create (vault_dir (), passphrase->text, &options, &recovery, &error);
  if (vault == NULL)
    return fail_error (error);
  relais_vault_close (vault);

  if (options.kdf != NULL)
    g_printerr ("relaisctl: %s\n", _("warning: weak key derivation (RELAIS_TEST_FAST_KDF): for tests only"));
  g_printerr (_("Vault created in %s.\n"
                "Recovery key — write it down now and keep it apart from this computer; "
                "it opens the vault if the passphrase is lost, and it will not be shown again:\n"),
              vault_dir ());
  g_print ("%s\n", recovery);
  sodium_memzero (recovery, strlen (recovery));
  return 0;
}

static int
cmd_passwd (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Secret) fresh = secret_new ();
  gboolean use_recovery = FALSE;
  RelaisVault *vault = NULL;
  GOptionEntry entries[] = {
    { "recovery-key", 0, 0, G_OPTION_ARG_NONE, &use_recovery,
      N_("Unlock with the recovery key (from RELAIS_RECOVERY_KEY or a prompt) instead of the passphrase"), NULL },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "", N_("Change the vault's passphrase (the database is not rewritten)."), entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("passwd takes no argument"));

  if (use_recovery)
    {
      g_autoptr(Secret) key = secret_new ();

      if (!secret_from_env (key, "RELAIS_RECOVERY_KEY") &&
          !secret_from_prompt (key, _("Recovery key: "), &error))
        return fail_error (error);
      vault = relais_vault_open_recovery (vault_dir (), key->text, NULL, &error);
    }
  else
    vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);

  if (!secret_from_env (fresh, "RELAIS_NEW_PASSPHRASE"))
    {
      g_autoptr(Secret) again = secret_new ();

      if (!secret_from_prompt (fresh, _("New passphrase: "), &error) ||
          !secret_from_prompt (again, _("New passphrase again: "), &error))
        {
          relais_vault_close (vault);
          return fail_error (error);
        }
      if (strcmp (fresh->text, again->text) != 0)
        {
          relais_vault_close (vault);
          return fail (_("The two passphrases differ"));
        }
    }
  if (fresh->text[0] == '\0')
    {
      relais_vault_close (vault);
      return fail (_("The new passphrase is empty"));
    }

  if (!relais_vault_change_passphrase (vault, fresh->text, &error))
    {
      relais_vault_close (vault);
      return fail_error (error);
    }
  /* An enrolled user's identity on the server is wrapped by the same
   * passphrase (PROTOCOL.md §2.2): a new laptop must enrol with the new
   * one.  When the server cannot be reached, running passwd again with
   * the new passphrase as both old and new retries. */
  if (relais_sync_is_enrolled (vault)
      && !relais_sync_rewrap_user_keys (vault, fresh->text, NULL, &error))
    {
      relais_vault_close (vault);
      return fail (_("Passphrase changed on this computer, but not yet on the server (%s): "
                     "run relaisctl passwd again, with the new passphrase as the old one, "
                     "once the server can be reached"),
                   error->message);
    }
  relais_vault_close (vault);
  g_printerr ("%s\n", _("Passphrase changed."));
  return 0;
}

static int
cmd_verify (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  RelaisVault *vault;
  guint pages = 0;
  guint rejected;
  gboolean ok;

  if (!parse_options (&argc, &argv, "", N_("Authenticate every page and check the vault's integrity."), NULL, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("verify takes no argument"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  rejected = relais_vault_get_rejected_frames (vault);
  ok = relais_vault_verify (vault, &pages, &error);
  relais_vault_close (vault);
  if (!ok)
    return fail_error (error);

  if (rejected > 0)
    {
      g_autofree char *note = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                                            "note: %u incomplete journal frame was discarded "
                                                            "when the vault was opened (normal after a power cut)",
                                                            "note: %u incomplete journal frames were discarded "
                                                            "when the vault was opened (normal after a power cut)",
                                                            rejected),
                                               rejected);

      g_printerr ("relaisctl: %s\n", note);
    }
  g_print (g_dngettext (GETTEXT_PACKAGE,
                        "ok: %u page authenticated, integrity check passed\n",
                        "ok: %u pages authenticated, integrity check passed\n",
                        pages),
           pages);
  return 0;
}

typedef struct {
  char *last_name, *first_name, *birth_date, *phone, *email, *postal_code, *city;
} PersonOptions;

static void
person_options_entries (PersonOptions *o,
                        GOptionEntry   entries[8])
{
  GOptionEntry e[] = {
    { "last-name", 0, 0, G_OPTION_ARG_STRING, &o->last_name, N_("Last name"), N_("TEXT") },
    { "first-name", 0, 0, G_OPTION_ARG_STRING, &o->first_name, N_("First name"), N_("TEXT") },
    { "birth-date", 0, 0, G_OPTION_ARG_STRING, &o->birth_date, N_("Date of birth"), N_("YYYY-MM-DD") },
    { "phone", 0, 0, G_OPTION_ARG_STRING, &o->phone, N_("Phone number"), N_("NUMBER") },
    { "email", 0, 0, G_OPTION_ARG_STRING, &o->email, N_("E-mail address"), N_("ADDRESS") },
    { "postal-code", 0, 0, G_OPTION_ARG_STRING, &o->postal_code, N_("Postal code"), N_("CODE") },
    { "city", 0, 0, G_OPTION_ARG_STRING, &o->city, N_("City"), N_("TEXT") },
    { NULL }
  };

  memcpy (entries, e, sizeof e);
}

static RelaisPerson *
person_from_options (PersonOptions *o)
{
  RelaisPerson *person = relais_person_new ();

  person->last_name = g_steal_pointer (&o->last_name);
  person->first_name = g_steal_pointer (&o->first_name);
  person->birth_date = g_steal_pointer (&o->birth_date);
  person->phone = g_steal_pointer (&o->phone);
  person->email = g_steal_pointer (&o->email);
  person->postal_code = g_steal_pointer (&o->postal_code);
  person->city = g_steal_pointer (&o->city);
  return person;
}

static void
print_person_line (const RelaisPerson *p)
{
  g_print ("%s\t%s\t%s\t%s\n", p->id, p->last_name ? p->last_name : "",
           p->first_name ? p->first_name : "", p->birth_date ? p->birth_date : "");
}

static void
print_json (JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (generator, TRUE);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

static int
cmd_person_add (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) person = NULL;
  g_autofree char *existing = NULL;
  g_autofree char *id = NULL;
  PersonOptions o = { 0 };
  GOptionEntry entries[9];
  gboolean allow_duplicate = FALSE;
  RelaisVault *vault;

  person_options_entries (&o, entries);
  entries[7] = (GOptionEntry) { "allow-duplicate", 0, 0, G_OPTION_ARG_NONE, &allow_duplicate,
                                N_("Add even if a dossier with the same name and birth date exists"), NULL };
  entries[8] = (GOptionEntry) { NULL };
  if (!parse_options (&argc, &argv, "", N_("Add a dossier and print its id."), entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("person add takes options only (see --help)"));

  person = person_from_options (&o);
  if (!relais_person_validate (person, TRUE, &error))
    return fail_error (error);

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);

  if (!allow_duplicate)
    {
      existing = relais_person_find_identity (vault, person->last_name, person->first_name,
                                              person->birth_date, &error);
      if (error != NULL)
        {
          relais_vault_close (vault);
          return fail_error (error);
        }
      if (existing != NULL)
        {
          relais_vault_close (vault);
          return fail (_("A dossier with the same name and birth date exists already: %s "
                         "(use --allow-duplicate to add another)"), existing);
        }
    }

  id = relais_person_add (vault, person, &error);
  relais_vault_close (vault);
  return print_new_id (id, error);
}

static int
cmd_person_edit (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisPerson) changes = NULL;
  PersonOptions o = { 0 };
  GOptionEntry entries[8];
  RelaisVault *vault;
  gboolean ok;

  person_options_entries (&o, entries);
  if (!parse_options (&argc, &argv, N_("ID"), N_("Change fields of a dossier (an empty value clears an optional field)."),
                      entries, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (_("person edit takes one dossier id"));

  changes = person_from_options (&o);
  if (!relais_person_validate (changes, FALSE, &error))
    return fail_error (error);

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  ok = relais_person_edit (vault, argv[1], changes, &error);
  relais_vault_close (vault);
  if (!ok)
    return fail_error (error);
  return 0;
}

static int
cmd_person_list_or_search (int argc, char **argv, gboolean search)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) people = NULL;
  gboolean json = FALSE;
  int limit = 0;
  RelaisVault *vault;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON"), NULL },
    { "limit", 0, 0, G_OPTION_ARG_INT, &limit, N_("At most N dossiers"), N_("N") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, search ? N_("QUERY") : "",
                      search ? N_("Dossiers whose name contains QUERY (any case, any accent), one a line.")
                             : N_("Every dossier, one a line: id, last name, first name, birth date."),
                      entries, &error))
    return fail_error (error);
  if (argc != (search ? 2 : 1))
    return fail (search ? _("person search takes one query") : _("person list takes no argument"));
  if (limit < 0)
    return fail (_("--limit must be positive"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  people = relais_person_search (vault, search ? argv[1] : NULL, (guint) limit, &error);
  relais_vault_close (vault);
  if (people == NULL)
    return fail_error (error);

  if (json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_array (builder);
      for (guint i = 0; i < people->len; i++)
        {
          RelaisPerson *p = g_ptr_array_index (people, i);

          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "id");
          json_builder_add_string_value (builder, p->id);
          for (guint f = 0; f < RELAIS_PERSON_N_FIELDS; f++)
            {
              char **value = relais_person_field_ptr (p, f);

              relais_json_add_nullable_string (builder, relais_person_fields[f], *value);
            }
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      root = json_builder_get_root (builder);
      print_json (root);
    }
  else
    for (guint i = 0; i < people->len; i++)
      print_person_line (g_ptr_array_index (people, i));
  return 0;
}

static int
cmd_person_show (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = NULL;
  g_autoptr(RelaisPerson) person = NULL;
  gboolean json = FALSE;
  RelaisVault *vault;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print the dossier as JSON"), NULL },
    { NULL }
  };

  if (!parse_options (&argc, &argv, N_("ID"), N_("Show a dossier."), entries, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (_("person show takes one dossier id"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  if (json)
    node = relais_person_to_json (vault, argv[1], &error);
  else
    person = relais_person_get (vault, argv[1], &error);
  relais_vault_close (vault);
  if (node == NULL && person == NULL)
    return fail_error (error);

  if (json)
    print_json (node);
  else
    {
      g_print ("id: %s\n", person->id);
      for (guint f = 0; f < RELAIS_PERSON_N_FIELDS; f++)
        {
          char **value = relais_person_field_ptr (person, f);
          if (*value != NULL)
            g_print ("%s: %s\n", relais_person_fields[f], *value);
        }
    }
  return 0;
}

static int
cmd_person_list (int argc, char **argv)
{
  return cmd_person_list_or_search (argc, argv, FALSE);
}

static int
cmd_person_search (int argc, char **argv)
{
  return cmd_person_list_or_search (argc, argv, TRUE);
}

static const Subcommand person_commands[] = {
  { "add", cmd_person_add },
  { "edit", cmd_person_edit },
  { "list", cmd_person_list },
  { "search", cmd_person_search },
  { "show", cmd_person_show },
  { NULL, NULL }
};

static int
cmd_person (int argc, char **argv)
{
  return run_subcommand (person_commands,
                         N_("person needs one of: add, list, show, search, edit"), argc, argv);
}

static int
cmd_import (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  RelaisImportStats stats = { 0 };
  gsize length = 0;
  RelaisVault *vault;
  gboolean ok;

  if (!parse_options (&argc, &argv, N_("FILE"),
                      N_("Import people from a CSV file (';' or ',', UTF-8 or Windows-1252). "
                         "All rows or none: a file with bad rows is refused whole."), NULL, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (_("import takes one CSV file"));

  if (!g_file_get_contents (argv[1], &data, &length, &error))
    return fail_error (error);

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  ok = relais_import_csv (vault, data, length, &stats, &error);
  relais_vault_close (vault);
  if (data != NULL)
    sodium_memzero (data, length);
  if (!ok)
    return fail_error (error);

  g_print (g_dngettext (GETTEXT_PACKAGE,
                        "imported %u row: %u created, %u updated, %u unchanged\n",
                        "imported %u rows: %u created, %u updated, %u unchanged\n",
                        stats.rows),
           stats.rows, stats.created, stats.updated, stats.unchanged);
  return 0;
}

static int
cmd_export (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = NULL;
  RelaisVault *vault;

  if (!parse_options (&argc, &argv, "",
                      N_("Print every dossier, decrypted, as one JSON document "
                         "(the person's right of access and portability)."), NULL, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("export takes no argument"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  node = relais_vault_export_json (vault, &error);
  relais_vault_close (vault);
  if (node == NULL)
    return fail_error (error);
  print_json (node);
  return 0;
}

/* The dossier's records (relais-dossier.h) */

static int
cmd_diagnostic_set (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *comment = NULL;
  g_autofree char *situations = NULL;
  g_auto(GStrv) keys = NULL;
  RelaisVault *vault;
  gboolean ok;
  GOptionEntry entries[] = {
    { "comment", 0, 0, G_OPTION_ARG_STRING, &comment, N_("Comment (an empty one clears it)"), N_("TEXT") },
    { "situations", 0, 0, G_OPTION_ARG_STRING, &situations,
      N_("Situations ticked for the theme, comma-separated keys (empty: none)"), N_("KEYS") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, N_("ID THEME LEVEL"),
                      N_("Assess one theme of the diagnostic, signed by you and dated now. "
                         "LEVEL: non-aborde, sans-impact, moyen or fort."),
                      entries, &error))
    return fail_error (error);
  if (argc != 4)
    return fail (_("diagnostic set takes a dossier id, a theme and a level"));
  if (situations != NULL)
    keys = g_strsplit_set (situations, ", ", -1);
  if (keys != NULL)
    {
      /* Drop the empty pieces of "a,,b" or "a, b". */
      guint j = 0;

      for (guint i = 0; keys[i] != NULL; i++)
        if (*keys[i] != '\0')
          keys[j++] = keys[i];
        else
          g_free (keys[i]);
      keys[j] = NULL;
    }

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  ok = relais_diagnostic_set (vault, argv[1], argv[2], argv[3],
                              (const char * const *) keys, comment, &error);
  relais_vault_close (vault);
  if (!ok)
    return fail_error (error);
  return 0;
}

static int
cmd_diagnostic_show (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) list = NULL;
  RelaisVault *vault;

  if (!parse_options (&argc, &argv, N_("ID"),
                      N_("The current diagnostic, one theme a line: theme, level, situations, "
                         "author, date (tab-separated)."), NULL, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (_("diagnostic show takes one dossier id"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  list = relais_diagnostic_list (vault, argv[1], &error);
  relais_vault_close (vault);
  if (list == NULL)
    return fail_error (error);

  for (guint i = 0; i < list->len; i++)
    {
      RelaisDiagnostic *d = g_ptr_array_index (list, i);
      g_autofree char *situations = g_strjoinv (",", d->situations);
      g_autofree char *when = d->changed_at != NULL
                              ? g_date_time_format (d->changed_at, "%Y-%m-%d %H:%M") : NULL;

      g_print ("%s\t%s\t%s\t%s\t%s\n", d->theme, d->level != NULL ? d->level : "",
               situations, d->author != NULL ? d->author : "", when != NULL ? when : "");
    }
  return 0;
}

static const Subcommand diagnostic_commands[] = {
  { "set", cmd_diagnostic_set },
  { "show", cmd_diagnostic_show },
  { NULL, NULL }
};

static int
cmd_diagnostic (int argc, char **argv)
{
  return run_subcommand (diagnostic_commands,
                         N_("diagnostic needs one of: set, show"), argc, argv);
}

static int
cmd_plan_add_objective (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  RelaisVault *vault;

  if (!parse_options (&argc, &argv, N_("ID THEME TEXT"),
                      N_("Add an objective to the plan of a dossier and print its id."), NULL, &error))
    return fail_error (error);
  if (argc != 4)
    return fail (_("plan add-objective takes a dossier id, a theme and a text"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  id = relais_objective_add (vault, argv[1], argv[2], argv[3], &error);
  relais_vault_close (vault);
  return print_new_id (id, error);
}

static int
cmd_plan_add_action (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *due = NULL;
  g_autofree char *carrier = NULL;
  RelaisVault *vault;
  GOptionEntry entries[] = {
    { "due", 0, 0, G_OPTION_ARG_STRING, &due, N_("Due date"), N_("YYYY-MM-DD") },
    { "carrier", 0, 0, G_OPTION_ARG_STRING, &carrier, N_("Organisation that carries the action"), N_("TEXT") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, N_("OBJECTIVE_ID TEXT"),
                      N_("Add an action to an objective and print its id."), entries, &error))
    return fail_error (error);
  if (argc != 3)
    return fail (_("plan add-action takes an objective id and a text"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  id = relais_action_add (vault, argv[1], argv[2], due, carrier, &error);
  relais_vault_close (vault);
  return print_new_id (id, error);
}

static int
cmd_plan_set_status (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  RelaisVault *vault;
  gboolean ok;

  if (!parse_options (&argc, &argv, N_("ID STATUS"),
                      N_("Change the status of an objective (en-cours, realise, abandonne) or an action "
                         "(planifiee, en-cours, realisee, abandonnee, annulee)."), NULL, &error))
    return fail_error (error);
  if (argc != 3)
    return fail (_("plan set-status takes an objective or action id and a status"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  ok = relais_plan_set_status (vault, argv[1], argv[2], &error);
  relais_vault_close (vault);
  if (!ok)
    return fail_error (error);
  return 0;
}

static const Subcommand plan_commands[] = {
  { "add-objective", cmd_plan_add_objective },
  { "add-action", cmd_plan_add_action },
  { "set-status", cmd_plan_set_status },
  { NULL, NULL }
};

static int
cmd_plan (int argc, char **argv)
{
  return run_subcommand (plan_commands,
                         N_("plan needs one of: add-objective, add-action, set-status"), argc, argv);
}

static int
cmd_appointment_add (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *at = NULL;
  g_autofree char *with_whom = NULL;
  g_autofree char *place = NULL;
  RelaisVault *vault;
  GOptionEntry entries[] = {
    { "at", 0, 0, G_OPTION_ARG_STRING, &at, N_("Date and time (local)"), N_("'YYYY-MM-DD HH:MM'") },
    { "with", 0, 0, G_OPTION_ARG_STRING, &with_whom, N_("Whom the person meets"), N_("TEXT") },
    { "place", 0, 0, G_OPTION_ARG_STRING, &place, N_("Where"), N_("TEXT") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, N_("ID"), N_("Add an appointment to a dossier and print its id."),
                      entries, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (_("appointment add takes one dossier id"));
  if (at == NULL || with_whom == NULL)
    return fail (_("appointment add needs --at and --with"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  id = relais_appointment_add (vault, argv[1], at, with_whom, place, &error);
  relais_vault_close (vault);
  return print_new_id (id, error);
}

static const Subcommand appointment_commands[] = {
  { "add", cmd_appointment_add },
  { NULL, NULL }
};

static int
cmd_appointment (int argc, char **argv)
{
  return run_subcommand (appointment_commands,
                         N_("appointment needs one of: add"), argc, argv);
}

static int
cmd_note_add (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  RelaisVault *vault;

  if (!parse_options (&argc, &argv, N_("ID TEXT"),
                      N_("Add a note to the journal of a dossier, signed by you and dated now, "
                         "and print its id."), NULL, &error))
    return fail_error (error);
  if (argc != 3)
    return fail (_("note add takes a dossier id and a text"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  id = relais_note_add (vault, argv[1], argv[2], &error);
  relais_vault_close (vault);
  return print_new_id (id, error);
}

/* One field of a tab-separated line: backslash, tab and line breaks
 * escaped as \\, \t, \n and \r. */
static int
cmd_note_list (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) notes = NULL;
  RelaisVault *vault;

  if (!parse_options (&argc, &argv, N_("ID"),
                      N_("The journal of a dossier, oldest first, one note a line: date (UTC), author "
                         "and text, tab-separated, with tabs and line breaks escaped as \\t and \\n."),
                      NULL, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (_("note list takes one dossier id"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  notes = relais_note_list (vault, argv[1], 0, &error);
  /* An unknown id is a mistake to report, not an empty journal. */
  if (notes != NULL && notes->len == 0)
    {
      g_autoptr(RelaisPerson) person = relais_person_get (vault, argv[1], &error);

      if (person == NULL)
        g_clear_pointer (&notes, g_ptr_array_unref);
    }
  relais_vault_close (vault);
  if (notes == NULL)
    return fail_error (error);

  for (guint i = notes->len; i > 0; i--)
    {
      RelaisNote *note = g_ptr_array_index (notes, i - 1);
      g_autofree char *author = relaisctl_escape_field (note->author);
      g_autofree char *text = relaisctl_escape_field (note->text);

      g_print ("%s\t%s\t%s\n", note->written_at, author, text);
    }
  return 0;
}

static const Subcommand note_commands[] = {
  { "add", cmd_note_add },
  { "list", cmd_note_list },
  { NULL, NULL }
};

static int
cmd_note (int argc, char **argv)
{
  return run_subcommand (note_commands,
                         N_("note needs one of: add, list"), argc, argv);
}

static int
cmd_summary (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSummary) summary = NULL;
  g_autofree char *pdf = NULL;
  RelaisVault *vault;
  GOptionEntry entries[] = {
    { "pdf", 0, 0, G_OPTION_ARG_FILENAME, &pdf, N_("Write the summary to FILE as a PDF"), N_("FILE") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, N_("ID"),
                      N_("Write the person's summary (restitution), in French, as an A4 PDF."),
                      entries, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (_("summary takes one dossier id"));
  if (pdf == NULL || *pdf == '\0')
    return fail (_("summary needs --pdf FILE"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  summary = relais_summary_new (vault, argv[1], &error);
  relais_vault_close (vault);
  if (summary == NULL)
    return fail_error (error);
  if (!relais_summary_write_pdf (summary, pdf, &error))
    return fail_error (error);
  return 0;
}

static void
usage (void)
{
  /* Translators: keep the command and option names, and the column. */
  g_printerr ("%s", _("Usage: relaisctl COMMAND [OPTIONS]\n\n"
                      "Commands:\n"
                      "  init                      create a vault and print its recovery key once\n"
                      "  passwd                    change the passphrase\n"
                      "  verify                    authenticate every page and check integrity\n"
                      "  person add|list|show|search|edit\n"
                      "                            dossiers from the shell\n"
                      "  import FILE               import people from a CSV file\n"
                      "  export                    every dossier as one JSON document\n\n"
                      "Every command takes --vault DIR and --passphrase-file FILE; the passphrase\n"
                      "may also come from RELAIS_PASSPHRASE, or is asked for without echo.\n"
                      "'relaisctl COMMAND --help' tells more.\n"));
  /* Translators: keep the command names, and the column. */
  g_printerr ("\n%s", _("Records of a dossier:\n"
                        "  diagnostic set|show       the diagnostic, theme by theme\n"
                        "  plan add-objective|add-action|set-status\n"
                        "                            objectives and actions\n"
                        "  appointment add           book an appointment\n"
                        "  note add|list             the journal\n"));
  /* Translators: keep the command and option names, and the column. */
  g_printerr ("\n%s", _("The person's document:\n"
                        "  summary ID --pdf FILE     the summary (restitution) as an A4 PDF\n"));
  g_printerr ("\n%s", relaisctl_sync_usage ());
}

/* The passphrase for the sync commands, in guarded memory they release
 * with sodium_free(). */
static char *
sync_get_passphrase (GError **error)
{
  Secret *secret = get_passphrase (FALSE, error);
  char *text;

  if (secret == NULL)
    return NULL;
  text = g_steal_pointer (&secret->text);
  g_free (secret);
  return text;
}

/* Global options may also come before the command, as in
 * "relaisctl --vault DIR enroll …": they are moved after it, where every
 * command's option parser reads them. */
static void
hoist_global_options (int    argc,
                      char **argv)
{
  int first = 1;

  while (first < argc)
    {
      const char *arg = argv[first];
      int n;

      if (g_str_equal (arg, "--vault") || g_str_equal (arg, "--passphrase-file"))
        n = first + 1 < argc ? 2 : 1;
      else if (g_str_has_prefix (arg, "--vault=") || g_str_has_prefix (arg, "--passphrase-file="))
        n = 1;
      else
        break;
      first += n;
    }
  if (first == 1 || first >= argc)
    return;

  /* Rotate argv[1 .. first) behind the command word argv[first]. */
  {
    g_autofree char **moved = g_new (char *, first - 1);

    memcpy (moved, argv + 1, sizeof (char *) * (first - 1));
    argv[1] = argv[first];
    memmove (argv + 2, argv + first + 1, sizeof (char *) * (argc - first - 1));
    memcpy (argv + argc - (first - 1), moved, sizeof (char *) * (first - 1));
  }
}

int
main (int argc, char **argv)
{
  struct rlimit no_core = { 0, 0 };
  const char *command;

  setlocale (LC_ALL, "");
  relais_i18n_init ();
  /* No core dump may carry a key or a dossier. */
  setrlimit (RLIMIT_CORE, &no_core);

  if (sodium_init () < 0)
    return fail (_("The cryptography library could not start"));

  if (argc < 2 || g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h"))
    {
      usage ();
      return argc < 2 ? 1 : 0;
    }

  hoist_global_options (argc, argv);
  command = argv[1];
  if (relaisctl_sync_handles (command))
    {
      RelaisctlSyncContext context = {
        .global_entries = global_entries,
        .vault_dir = vault_dir,
        .get_passphrase = sync_get_passphrase,
      };

      return relaisctl_sync_main (&context, argc - 1, argv + 1);
    }
  if (g_str_equal (command, "init"))
    return cmd_init (argc - 1, argv + 1);
  if (g_str_equal (command, "passwd"))
    return cmd_passwd (argc - 1, argv + 1);
  if (g_str_equal (command, "verify"))
    return cmd_verify (argc - 1, argv + 1);
  if (g_str_equal (command, "person"))
    return cmd_person (argc - 1, argv + 1);
  if (g_str_equal (command, "import"))
    return cmd_import (argc - 1, argv + 1);
  if (g_str_equal (command, "export"))
    return cmd_export (argc - 1, argv + 1);
  if (g_str_equal (command, "summary"))
    return cmd_summary (argc - 1, argv + 1);
  if (g_str_equal (command, "diagnostic"))
    return cmd_diagnostic (argc - 1, argv + 1);
  if (g_str_equal (command, "plan"))
    return cmd_plan (argc - 1, argv + 1);
  if (g_str_equal (command, "appointment"))
    return cmd_appointment (argc - 1, argv + 1);
  if (g_str_equal (command, "note"))
    return cmd_note (argc - 1, argv + 1);

  return fail (_("unknown command '%s': see 'relaisctl --help'"), command);
}
