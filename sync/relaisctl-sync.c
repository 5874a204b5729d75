#define G_LOG_DOMAIN "relaisctl"

#include "config.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>
#include <glib/gi18n.h>
#include <json-glib/json-glib.h>

#include "relais-oplog.h"
#include "relais-sync-engine.h"
#include "relais-sync-recovery.h"
#include "relaisctl-sync.h"

/* relaisctl's sync commands.  As everywhere in relaisctl: exit status 0
 * on success, 1 with one line on stderr on failure; personal data only on
 * stdout and only when asked for (conflicts). */

static const RelaisctlSyncContext *ctx;

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
  g_printerr ("relaisctl: %s\n", message);
  return 1;
}

static int
fail_error (const GError *error)
{
  return fail ("%s", error->message);
}

static gboolean
parse_options (int           *argc,
               char        ***argv,
               const char    *usage,
               const char    *summary,
               GOptionEntry  *entries,
               GError       **error)
{
  g_autoptr(GOptionContext) context = g_option_context_new (usage);

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, summary);
  g_option_context_add_main_entries (context, ctx->global_entries, GETTEXT_PACKAGE);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  return g_option_context_parse (context, argc, argv, error);
}

static RelaisVault *
open_vault (GError **error)
{
  char *passphrase = ctx->get_passphrase (error);
  RelaisVault *vault;

  if (passphrase == NULL)
    return NULL;
  vault = relais_vault_open (ctx->vault_dir (), passphrase, NULL, error);
  sodium_free (passphrase);
  return vault;
}

/* A revoked device wipes what it holds (PROTOCOL.md §5.1).  The vault
 * must be closed. */
static int
wipe_revoked (void)
{
  g_autoptr(GError) error = NULL;

  if (!relais_sync_wipe (ctx->vault_dir (), &error))
    return fail (_("This device was revoked by the server, and deleting its vault failed: %s"),
                 error->message);
  return fail (_("This device was revoked by the server: its vault and spool in %s were deleted."),
               ctx->vault_dir ());
}

static gboolean
is_revoked (const GError *error)
{
  return g_error_matches (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_REVOKED);
}

/* enroll */

static int
cmd_enroll (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *server = NULL;
  g_autofree char *code = NULL;
  g_autofree char *cacert = NULL;
  g_autofree char *name = NULL;
  g_autofree char *recovery = NULL;
  RelaisVault *vault;
  char *passphrase;
  gboolean ok;
  GOptionEntry entries[] = {
    { "server", 0, 0, G_OPTION_ARG_STRING, &server, N_("The sync server's address"), N_("URL") },
    { "code", 0, 0, G_OPTION_ARG_STRING, &code, N_("The enrolment code from your administrator"), N_("CODE") },
    { "cacert", 0, 0, G_OPTION_ARG_FILENAME, &cacert,
      N_("Verify the server against this certificate instead of the system's"), N_("FILE") },
    { "name", 0, 0, G_OPTION_ARG_STRING, &name, N_("A name for this device (default: the host name)"), N_("NAME") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "",
                      N_("Enrol this device with a sync server, with a one-time code. The vault is "
                         "created when there is none; the passphrase also protects your keys on the server."),
                      entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("enroll takes options only (see --help)"));
  if (server == NULL || code == NULL)
    return fail (_("enroll needs --server and --code"));

  passphrase = ctx->get_passphrase (&error);
  if (passphrase == NULL)
    return fail_error (error);
  vault = relais_vault_open (ctx->vault_dir (), passphrase, NULL, &error);
  if (vault == NULL && g_error_matches (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NO_VAULT))
    {
      RelaisKdfParams test_kdf;
      RelaisVaultOptions options = { 0 };

      /* A new laptop: the vault comes with the enrolment, as init makes it. */
      g_clear_error (&error);
      if (g_strcmp0 (g_getenv ("RELAIS_TEST_FAST_KDF"), "1") == 0)
        {
          relais_kdf_params_insecure_for_tests (&test_kdf);
          options.kdf = &test_kdf;
        }
      vault = relais_vault_create (ctx->vault_dir (), passphrase, &options, &recovery, &error);
    }
  if (vault == NULL)
    {
      sodium_free (passphrase);
      return fail_error (error);
    }

  ok = relais_sync_enroll (vault, server, cacert, code, passphrase, name, NULL, &error);
  sodium_free (passphrase);
  relais_vault_close (vault);

  /* A vault made for a failed enrolment goes: another try may come with
   * another passphrase (that of the first device). */
  if (!ok && recovery != NULL)
    {
      relais_sync_wipe (ctx->vault_dir (), NULL);
      sodium_memzero (recovery, strlen (recovery));
      g_clear_pointer (&recovery, g_free);
    }
  if (recovery != NULL)
    {
      g_printerr (_("Vault created in %s.\n"
                    "Recovery key — write it down now and keep it apart from this computer; "
                    "it opens the vault if the passphrase is lost, and it will not be shown again:\n"),
                  ctx->vault_dir ());
      g_printerr ("%s\n", recovery);
      sodium_memzero (recovery, strlen (recovery));
    }
  if (!ok)
    return fail_error (error);

  {
    g_autoptr(RelaisSpool) spool = relais_spool_open (ctx->vault_dir (), &error);
    g_autoptr(RelaisSpoolIdentity) identity = spool != NULL ? relais_spool_get_identity (spool, &error) : NULL;

    if (identity == NULL)
      return fail_error (error);
    /* Not translated: scripts read it. */
    g_print ("enrolled as %s, device %s\n", identity->user_id, identity->device_id);
  }
  return 0;
}

/* sync */

static int
cmd_sync_status (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(RelaisSpoolIdentity) identity = NULL;
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *spool_dir = NULL;
  g_autofree char *last_error = NULL;
  g_autofree char *text = NULL;
  gboolean json = FALSE;
  gint64 last_success = 0;
  guint pending = 0;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON"), NULL },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "",
                      N_("Whether this device is enrolled, what waits to be sent and how the last "
                         "sync went (no passphrase needed)."), entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("sync status takes no argument"));

  /* Reading must not create the spool of a vault never enrolled. */
  spool_dir = g_build_filename (ctx->vault_dir (), "spool", NULL);
  if (g_file_test (spool_dir, G_FILE_TEST_IS_DIR))
    {
      spool = relais_spool_open (ctx->vault_dir (), &error);
      if (spool == NULL)
        return fail_error (error);
      identity = relais_spool_get_identity (spool, &error);
      if (error != NULL)
        return fail_error (error);
      pending = relais_spool_count_pending (spool);
      last_success = relais_spool_get_last_success (spool);
      last_error = relais_spool_get_last_error (spool);
    }

  if (!json)
    {
      if (identity == NULL)
        {
          g_print ("%s\n", _("not enrolled"));
          return 0;
        }
      g_print (_("enrolled as %s (%s), device %s, server %s\n"), identity->user_id,
               identity->org, identity->device_id, identity->server);
      g_print (g_dngettext (GETTEXT_PACKAGE, "%u change waiting to be sent\n",
                            "%u changes waiting to be sent\n", pending), pending);
      if (last_success > 0)
        {
          g_autoptr(GDateTime) when = g_date_time_new_from_unix_local (last_success);
          g_autofree char *shown = g_date_time_format (when, "%Y-%m-%d %H:%M:%S");

          g_print (_("last complete sync: %s\n"), shown);
        }
      else
        g_print ("%s\n", _("never synced completely"));
      if (last_error != NULL)
        g_print (_("last failure: %s\n"), last_error);
      return 0;
    }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "enrolled");
  json_builder_add_boolean_value (builder, identity != NULL);
#define ADD_STRING(name, value) \
  G_STMT_START { \
    json_builder_set_member_name (builder, name); \
    if ((value) != NULL) json_builder_add_string_value (builder, value); \
    else json_builder_add_null_value (builder); \
  } G_STMT_END
  ADD_STRING ("server", identity != NULL ? identity->server : NULL);
  ADD_STRING ("user_id", identity != NULL ? identity->user_id : NULL);
  ADD_STRING ("org", identity != NULL ? identity->org : NULL);
  ADD_STRING ("device_id", identity != NULL ? identity->device_id : NULL);
  json_builder_set_member_name (builder, "pending");
  json_builder_add_int_value (builder, pending);
  json_builder_set_member_name (builder, "last_success");
  if (last_success > 0)
    json_builder_add_int_value (builder, last_success);
  else
    json_builder_add_null_value (builder);
  ADD_STRING ("last_error", last_error);
#undef ADD_STRING
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_pretty (generator, TRUE);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
  return 0;
}

static int
sync_background (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  RelaisExchangeReport report = { 0 };
  g_autofree char *spool_dir = g_build_filename (ctx->vault_dir (), "spool", NULL);
  gboolean ok;

  /* The timer runs on machines never enrolled too: make nothing there. */
  if (!g_file_test (spool_dir, G_FILE_TEST_IS_DIR))
    return fail (_("This vault is not enrolled with a sync server: run “relaisctl enroll” first."));
  spool = relais_spool_open (ctx->vault_dir (), &error);
  if (spool == NULL)
    return fail_error (error);
  if (!relais_spool_is_enrolled (spool))
    return fail (_("This vault is not enrolled with a sync server: run “relaisctl enroll” first."));

  ok = relais_spool_exchange (spool, &report, NULL, &error);
  g_clear_pointer (&spool, relais_spool_free);
  if (!ok && is_revoked (error))
    return wipe_revoked ();
  if (!ok)
    return fail (_("The sync did not complete (pushed %u, pulled %u): %s"),
                 report.pushed, report.pulled, error->message);
  /* Not translated: scripts read it. */
  g_print ("pushed %u, pulled %u\n", report.pushed, report.pulled);
  return 0;
}

/* Completes the recovery wraps other organisations lack (PROTOCOL.md
 * §5.2).  What came before it completed: a failure here is one warning
 * line, and the exit status stays that of the sync, share or unshare. */
static void
fill_recovery (RelaisVault *vault)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = relais_spool_open (relais_vault_get_dir (vault), &error);
  g_autoptr(RelaisClient) client = NULL;
  guint filled = 0;

  if (spool != NULL)
    client = relais_spool_make_client (spool, &error);
  if (client != NULL && relais_sync_fill_recovery (vault, client, &filled, NULL, &error))
    return;
  {
    /* Translators: the reason follows ("The server cannot be reached…"). */
    g_autofree char *message = g_strdup_printf (_("warning: the recovery wraps of some dossiers were not "
                                                  "completed (the next sync tries again): %s"),
                                                error->message);

    g_printerr ("relaisctl: %s\n", message);
  }
}

static void
report_refusal (const char   *dossier,
                const GError *reason,
                gpointer      user_data)
{
  /* Translators: the dossier's id, then why ("the signature does not match its author"). */
  g_autofree char *message = g_strdup_printf (_("refused a change set of dossier %s: %s"),
                                              dossier, relais_sync_describe_refusal (reason));

  g_printerr ("relaisctl: %s\n", message);
}

static int
cmd_sync (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  RelaisSyncReport report = { 0 };
  gboolean background = FALSE;
  RelaisVault *vault;
  gboolean ok;
  GOptionEntry entries[] = {
    { "background", 0, 0, G_OPTION_ARG_NONE, &background,
      N_("Exchange the spool only, without the passphrase (what the systemd timer runs)"), NULL },
    { NULL }
  };

  if (argc > 1 && g_str_equal (argv[1], "status"))
    return cmd_sync_status (argc - 1, argv + 1);

  if (!parse_options (&argc, &argv, "",
                      N_("Send this device's changes to the server, receive the others', and apply "
                         "them. Exits 0 only when the whole exchange completed."), entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("sync takes no argument but “status”"));
  if (background)
    return sync_background ();

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  ok = relais_sync_run_full (vault, &report, report_refusal, NULL, NULL, &error);
  if (ok)
    fill_recovery (vault);
  relais_vault_close (vault);
  if (!ok && is_revoked (error))
    return wipe_revoked ();
  if (!ok && error->domain != RELAIS_CLIENT_ERROR)
    return fail_error (error);
  if (!ok)
    return fail (_("The sync did not complete (pushed %u, pulled %u): %s"),
                 report.pushed, report.pulled, error->message);
  if (report.waiting > 0)
    g_printerr ("relaisctl: %s\n",
                g_dngettext (GETTEXT_PACKAGE,
                             "a received change set waits for a key this device does not hold yet",
                             "some received change sets wait for a key this device does not hold yet",
                             report.waiting));
  /* Not translated: scripts read it. */
  g_print ("pushed %u, pulled %u, conflicts %u\n", report.pushed, report.pulled, report.conflicts);
  return 0;
}

/* share, unshare */

static int
cmd_share_or_unshare (int argc, char **argv, gboolean share)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *with = NULL;
  RelaisVault *vault;
  gboolean ok;
  GOptionEntry entries[] = {
    { "with", 0, 0, G_OPTION_ARG_STRING, &with, N_("The colleague: a user id, or a name the directory has once"),
      N_("USER") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, N_("DOSSIER_ID"),
                      share ? N_("Give a colleague access to a dossier, with its whole history.")
                            : N_("Remove a colleague from a dossier's team; its key is renewed for what follows."),
                      entries, &error))
    return fail_error (error);
  if (argc != 2 || with == NULL)
    return fail (share ? _("share takes one dossier id and --with USER")
                       : _("unshare takes one dossier id and --with USER"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  if (share)
    ok = relais_sync_share (vault, argv[1], with, NULL, &error);
  else
    ok = relais_sync_unshare (vault, argv[1], with, NULL, &error);
  if (ok)
    fill_recovery (vault);
  relais_vault_close (vault);
  if (!ok && is_revoked (error))
    return wipe_revoked ();
  if (!ok)
    return fail_error (error);
  return 0;
}

static int
cmd_share (int argc, char **argv)
{
  return cmd_share_or_unshare (argc, argv, TRUE);
}

static int
cmd_unshare (int argc, char **argv)
{
  return cmd_share_or_unshare (argc, argv, FALSE);
}

/* conflicts */

static char *
format_hlc (guint64 hlc)
{
  g_autoptr(GDateTime) when = g_date_time_new_from_unix_local ((gint64) ((hlc >> 16) / 1000));

  return when != NULL ? g_date_time_format (when, "%Y-%m-%d %H:%M:%S") : g_strdup ("?");
}

/* Backslash, tab and line breaks escaped, as note list does. */
char *
relaisctl_escape_field (const char *text)
{
  GString *out = g_string_new (NULL);

  for (const char *p = text != NULL ? text : ""; *p != '\0'; p++)
    switch (*p)
      {
      case '\\': g_string_append (out, "\\\\"); break;
      case '\t': g_string_append (out, "\\t"); break;
      case '\n': g_string_append (out, "\\n"); break;
      case '\r': g_string_append (out, "\\r"); break;
      default:   g_string_append_c (out, *p); break;
      }
  return g_string_free (out, FALSE);
}

static int
cmd_conflicts_resolve (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;
  g_autofree char *value = NULL;
  RelaisConflict *found = NULL;
  const char *chosen;
  int pick = 0;
  RelaisVault *vault;
  gboolean ok;
  GOptionEntry entries[] = {
    { "value", 0, 0, G_OPTION_ARG_STRING, &value, N_("The value to keep (an empty one clears the field)"),
      N_("VALUE") },
    { "pick", 0, 0, G_OPTION_ARG_INT, &pick, N_("Keep the N-th competing value, as conflicts lists them"),
      N_("N") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, N_("ENTITY_ID FIELD"),
                      N_("Settle a conflict: the value kept becomes a new change that supersedes "
                         "every competing one, on every device."), entries, &error))
    return fail_error (error);
  if (argc != 3)
    return fail (_("conflicts resolve takes a record id and a field"));
  if ((value == NULL) == (pick == 0))
    return fail (_("conflicts resolve needs either --value VALUE or --pick N"));
  if (pick < 0)
    return fail (_("--pick must be positive"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  conflicts = relais_oplog_conflicts (vault, NULL, &error);
  if (conflicts == NULL)
    {
      relais_vault_close (vault);
      return fail_error (error);
    }
  for (guint i = 0; i < conflicts->len && found == NULL; i++)
    {
      RelaisConflict *c = g_ptr_array_index (conflicts, i);

      if (g_str_equal (c->entity_id, argv[1]) && g_str_equal (c->field, argv[2]))
        found = c;
    }
  if (found == NULL)
    {
      relais_vault_close (vault);
      return fail (_("There is no conflict on field %s of record %s."), argv[2], argv[1]);
    }
  if (pick > 0)
    {
      if ((guint) pick > found->values->len)
        {
          relais_vault_close (vault);
          return fail (g_dngettext (GETTEXT_PACKAGE,
                                    "--pick %d: the conflict has %u value",
                                    "--pick %d: the conflict has %u values",
                                    found->values->len),
                       pick, found->values->len);
        }
      chosen = ((RelaisOp *) g_ptr_array_index (found->values, pick - 1))->value;
    }
  else
    chosen = *value != '\0' ? value : NULL;

  ok = relais_oplog_resolve (vault, found->entity, found->entity_id, found->field, chosen, &error);
  relais_vault_close (vault);
  if (!ok)
    return fail_error (error);
  return 0;
}

static int
cmd_conflicts (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) conflicts = NULL;
  gboolean json = FALSE;
  RelaisVault *vault;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON"), NULL },
    { NULL }
  };

  if (argc > 1 && g_str_equal (argv[1], "resolve"))
    return cmd_conflicts_resolve (argc - 1, argv + 1);

  if (!parse_options (&argc, &argv, "",
                      N_("Every field where devices disagree, with each competing value, its author "
                         "and its time, the value shown now first."), entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("conflicts takes no argument but “resolve”"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  conflicts = relais_oplog_conflicts (vault, NULL, &error);
  relais_vault_close (vault);
  if (conflicts == NULL)
    return fail_error (error);

  if (json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(JsonGenerator) generator = json_generator_new ();
      g_autoptr(JsonNode) root = NULL;
      g_autofree char *text = NULL;

      json_builder_begin_array (builder);
      for (guint i = 0; i < conflicts->len; i++)
        {
          RelaisConflict *c = g_ptr_array_index (conflicts, i);

          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "dossier");
          json_builder_add_string_value (builder, c->dossier);
          json_builder_set_member_name (builder, "entity");
          json_builder_add_string_value (builder, c->entity);
          json_builder_set_member_name (builder, "entity_id");
          json_builder_add_string_value (builder, c->entity_id);
          json_builder_set_member_name (builder, "field");
          json_builder_add_string_value (builder, c->field);
          json_builder_set_member_name (builder, "values");
          json_builder_begin_array (builder);
          for (guint j = 0; j < c->values->len; j++)
            {
              RelaisOp *op = g_ptr_array_index (c->values, j);

              json_builder_begin_object (builder);
              json_builder_set_member_name (builder, "value");
              if (op->value != NULL)
                json_builder_add_string_value (builder, op->value);
              else
                json_builder_add_null_value (builder);
              json_builder_set_member_name (builder, "author");
              json_builder_add_string_value (builder, op->author);
              json_builder_set_member_name (builder, "device");
              json_builder_add_string_value (builder, op->device);
              json_builder_set_member_name (builder, "hlc");
              json_builder_add_int_value (builder, (gint64) op->hlc);
              json_builder_set_member_name (builder, "op");
              json_builder_add_string_value (builder, op->id);
              json_builder_end_object (builder);
            }
          json_builder_end_array (builder);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      root = json_builder_get_root (builder);
      json_generator_set_pretty (generator, TRUE);
      json_generator_set_root (generator, root);
      text = json_generator_to_data (generator, NULL);
      g_print ("%s\n", text);
      return 0;
    }

  /* One line per conflict (dossier, entity, record, field), then one
   * indented line per value: its rank, the value, author, time. */
  for (guint i = 0; i < conflicts->len; i++)
    {
      RelaisConflict *c = g_ptr_array_index (conflicts, i);

      g_print ("%s\t%s\t%s\t%s\n", c->dossier, c->entity, c->entity_id, c->field);
      for (guint j = 0; j < c->values->len; j++)
        {
          RelaisOp *op = g_ptr_array_index (c->values, j);
          g_autofree char *value = relaisctl_escape_field (op->value);
          g_autofree char *author = relaisctl_escape_field (op->author);
          g_autofree char *when = format_hlc (op->hlc);

          g_print ("\t%u\t%s\t%s\t%s\n", j + 1, value, author, when);
        }
    }
  return 0;
}

/* bundle */

static int
cmd_bundle (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  gboolean export;
  RelaisVault *vault;
  gboolean ok;

  if (argc < 2 || !(g_str_equal (argv[1], "export") || g_str_equal (argv[1], "import")))
    return fail (_("bundle needs one of: export, import"));
  export = g_str_equal (argv[1], "export");
  argc--;
  argv++;

  if (!parse_options (&argc, &argv, N_("FILE"),
                      export ? N_("Write the sealed change sets waiting to be sent to FILE, for a USB stick.")
                             : N_("Open and apply the change sets of a bundle made by “bundle export”."),
                      NULL, &error))
    return fail_error (error);
  if (argc != 2)
    return fail (export ? _("bundle export takes one file") : _("bundle import takes one file"));

  vault = open_vault (&error);
  if (vault == NULL)
    return fail_error (error);
  spool = relais_spool_open (ctx->vault_dir (), &error);
  if (spool == NULL)
    {
      relais_vault_close (vault);
      return fail_error (error);
    }

  if (export)
    {
      guint count = 0;

      ok = relais_sync_bundle_export (vault, spool, argv[1], &count, &error);
      relais_vault_close (vault);
      if (!ok)
        return fail_error (error);
      /* Not translated: scripts read it. */
      g_print ("exported %u change sets\n", count);
      return 0;
    }
  else
    {
      RelaisSyncReport report = { 0 };

      ok = relais_sync_bundle_import (vault, spool, argv[1], &report, report_refusal, NULL, &error);
      relais_vault_close (vault);
      if (!ok)
        return fail_error (error);
      if (report.waiting > 0)
        g_printerr ("relaisctl: %s\n",
                    g_dngettext (GETTEXT_PACKAGE,
                                 "a change set of the bundle is sealed with a key this device does not hold",
                                 "some change sets of the bundle are sealed with a key this device does not hold",
                                 report.waiting));
      /* Not translated: scripts read it. */
      g_print ("imported %u change sets, %u new operations\n", report.pulled, report.applied);
      return 0;
    }
}

/* recovery */

static int
cmd_recovery_key (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *public_key = NULL;
  GOptionEntry entries[] = {
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, N_("Write the secret key to FILE (created, mode 0600)"),
      N_("FILE") },
    { NULL }
  };

  if (argc < 2 || !g_str_equal (argv[1], "new"))
    return fail (_("recovery-key needs one of: new"));
  argc--;
  argv++;
  if (!parse_options (&argc, &argv, "",
                      N_("Make the organisation's recovery key offline: the secret half goes to a file "
                         "to keep off any networked computer, the public half (printed) goes to the "
                         "server with “relais-server org set-recovery-key”."),
                      entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("recovery-key new takes --out FILE only"));
  if (out == NULL)
    return fail (_("recovery-key new needs --out FILE"));

  public_key = relais_sync_recovery_key_new (out, &error);
  if (public_key == NULL)
    return fail_error (error);
  g_print ("%s\n", public_key);
  return 0;
}

static int
cmd_recover (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autofree char *key_file = NULL;
  g_autofree char *from = NULL;
  g_autofree char *to = NULL;
  g_autofree char *spool_dir = NULL;
  guint count = 0;
  GOptionEntry entries[] = {
    { "recovery-key", 0, 0, G_OPTION_ARG_FILENAME, &key_file,
      N_("The organisation's recovery secret key (from “recovery-key new”)"), N_("FILE") },
    { "from", 0, 0, G_OPTION_ARG_STRING, &from, N_("The user id who lost their passphrase"), N_("USER_ID") },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to, N_("Their new user id"), N_("USER_ID") },
    { NULL }
  };

  if (!parse_options (&argc, &argv, "",
                      N_("On an administrator's enrolled device: give a user's new identity every "
                         "dossier of their old one, with the organisation's recovery key."),
                      entries, &error))
    return fail_error (error);
  if (argc != 1)
    return fail (_("recover takes options only (see --help)"));
  if (key_file == NULL || from == NULL || to == NULL)
    return fail (_("recover needs --recovery-key, --from and --to"));

  spool_dir = g_build_filename (ctx->vault_dir (), "spool", NULL);
  if (!g_file_test (spool_dir, G_FILE_TEST_IS_DIR))
    return fail (_("This vault is not enrolled with a sync server: run “relaisctl enroll” first."));
  spool = relais_spool_open (ctx->vault_dir (), &error);
  if (spool == NULL)
    return fail_error (error);
  if (!relais_sync_recover (spool, key_file, from, to, &count, NULL, &error))
    {
      g_clear_pointer (&spool, relais_spool_free);
      if (is_revoked (error))
        return wipe_revoked ();
      return fail_error (error);
    }
  g_print (g_dngettext (GETTEXT_PACKAGE, "granted %u dossier to %s\n", "granted %u dossiers to %s\n", count),
           count, to);
  return 0;
}

/* Dispatch */

typedef struct {
  const char *name;
  int       (*run) (int argc, char **argv);
} Command;

static const Command commands[] = {
  { "enroll", cmd_enroll },
  { "sync", cmd_sync },
  { "share", cmd_share },
  { "unshare", cmd_unshare },
  { "conflicts", cmd_conflicts },
  { "bundle", cmd_bundle },
  { "recovery-key", cmd_recovery_key },
  { "recover", cmd_recover },
  { NULL, NULL }
};

gboolean
relaisctl_sync_handles (const char *command)
{
  for (const Command *c = commands; c->name != NULL; c++)
    if (g_strcmp0 (command, c->name) == 0)
      return TRUE;
  return FALSE;
}

int
relaisctl_sync_main (const RelaisctlSyncContext  *context,
                     int                          argc,
                     char                       **argv)
{
  g_return_val_if_fail (context != NULL && argc >= 1, 1);

  ctx = context;
  for (const Command *c = commands; c->name != NULL; c++)
    if (g_str_equal (argv[0], c->name))
      return c->run (argc, argv);
  return fail (_("unknown command '%s': see 'relaisctl --help'"), argv[0]);
}

const char *
relaisctl_sync_usage (void)
{
  /* Translators: keep the command and option names, and the column. */
  return _("Sync:\n"
           "  enroll --server URL --code CODE [--cacert FILE] [--name NAME]\n"
           "                            enrol this device with a sync server\n"
           "  sync [--background]       send and receive changes\n"
           "  sync status [--json]      enrolment and what waits to be sent\n"
           "  share|unshare ID --with USER\n"
           "                            a dossier's team\n"
           "  conflicts [--json]        fields where devices disagree\n"
           "  conflicts resolve ENTITY_ID FIELD (--value VALUE | --pick N)\n"
           "                            keep one value\n"
           "  bundle export|import FILE sealed changes on a USB stick\n"
           "  recovery-key new --out FILE\n"
           "                            the organisation's recovery key, offline\n"
           "  recover --recovery-key FILE --from USER_ID --to USER_ID\n"
           "                            re-grant a user's dossiers (administrators)\n");
}
