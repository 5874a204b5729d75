#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>

#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "relais-client.h"
#include "relais-spool.h"
#include "relais-sync-controller.h"
#include "relais-sync-engine.h"
#include "relais-sync-recovery.h"

/* A sync every so often while the vault is open (not on a metered link):
 * a colleague's change reaches an open dossier without anyone asking. */
#define PERIODIC_SECONDS (5 * 60)
/* Writes come in bursts (a form, a diagnostic): sealed once it is over. */
#define SEAL_DELAY_SECONDS 3

struct _RelaisSyncController
{
  GObject           parent_instance;

  RelaisVault      *vault;        /* not owned: see set_vault() */
  RelaisSpool      *spool;        /* main thread only; the worker opens its own */
  gboolean          enrolled;
  GCancellable     *cancellable;  /* of the exchange under way */
  guint             generation;   /* +1 at every set_vault(): stale results are dropped */
  gboolean          busy;         /* starting (start_source) or exchanging */
  guint             start_source; /* the seal, once the window has drawn */
  gboolean          start_manual;
  guint             unlock_source;
  gboolean          again;        /* one more exchange once this one ends */
  gboolean          again_manual;
  guint             pending;
  gint64            last_success;
  char             *error;

  GNetworkMonitor  *monitor;
  gboolean          network_ok;   /* available, full connectivity, not metered */
  /* The server answered since the network last went away: a server on
   * this machine or the local network is reachable even when
   * GNetworkMonitor sees no route to the Internet. */
  gboolean          reachable;
  guint             periodic_source;
  guint             seal_source;
  /* user id → "Name, Organisation", from the server's directory, fetched
   * once per unlock: op-log authors are user ids. */
  GHashTable       *directory;
  /* Held while a worker thread uses the vault (enrolment, sharing): no
   * seal, apply or exchange starts, and what was asked meanwhile runs at
   * release. */
  guint             holds;
  gboolean          held_seal;
  gboolean          held_begin;
  /* Filling the recovery wraps other organisations lack, after a
   * complete sync: first asked without the vault, then, when this vault
   * holds keys to wrap, done by a worker with the vault held
   * (fill_vault, one of the holds). */
  struct _FillData *fill;         /* the fill under way (its task owns it), or NULL */
  GCancellable     *fill_cancellable;
  gboolean          fill_vault;
};

G_DEFINE_FINAL_TYPE (RelaisSyncController, relais_sync_controller, G_TYPE_OBJECT)

enum {
  CHANGED,
  APPLIED,
  FINISHED,
  REVOKED,
  REFUSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* Limited connectivity is enough: an agency's server on its own network,
 * with no way out to the internet, is what a rural office often has. */
static gboolean
network_usable (GNetworkMonitor *monitor)
{
  return g_network_monitor_get_network_available (monitor)
         && !g_network_monitor_get_network_metered (monitor)
         && g_network_monitor_get_connectivity (monitor) != G_NETWORK_CONNECTIVITY_LOCAL;
}

static void
set_error (RelaisSyncController *self,
           const char           *message)
{
  g_free (self->error);
  self->error = g_strdup (message);
}

/* Reads what the spool says (pending, last success) and tells. */
static void
update (RelaisSyncController *self)
{
  if (self->spool != NULL)
    {
      self->pending = relais_spool_count_pending (self->spool);
      self->last_success = relais_spool_get_last_success (self->spool);
    }
  else
    {
      self->pending = 0;
      self->last_success = 0;
    }
  g_signal_emit (self, signals[CHANGED], 0);
}

/* Seals the vault's new operations into the spool.  Only between
 * exchanges: the worker reads spool/out. */
static gboolean
seal (RelaisSyncController  *self,
      guint                 *out_sealed,
      GError               **error)
{
  guint sealed = 0;
  gint64 start = g_get_monotonic_time ();

  if (out_sealed != NULL)
    *out_sealed = 0;
  if (self->vault == NULL || !self->enrolled || self->spool == NULL || self->holds > 0)
    return TRUE;
  if (!relais_sync_seal (self->vault, self->spool, &sealed, error))
    return FALSE;
  /* On the main thread: how long the window did not answer. */
  if (sealed > 0)
    g_debug ("sync: sealed %u change sets in %" G_GINT64_FORMAT " ms",
             sealed, (g_get_monotonic_time () - start) / 1000);
  if (out_sealed != NULL)
    *out_sealed = sealed;
  return TRUE;
}

typedef struct {
  guint  count;
  char  *dossier;   /* of the first one */
  char  *reason;
} Refusals;

static void
on_refused (const char   *dossier,
            const GError *reason,
            gpointer      user_data)
{
  Refusals *refusals = user_data;

  /* No content: which dossier and which check, never a value. */
  g_message ("sync: refused a change set of dossier %s: %s", dossier, reason->message);
  if (refusals->count++ == 0)
    {
      refusals->dossier = g_strdup (dossier);
      refusals->reason = g_strdup (relais_sync_describe_refusal (reason));
    }
}

/* Applies what waits in spool/in: pulled by this window's last exchange,
 * or by the background service while the vault was locked.  Change sets
 * that fail their checks are refused (and deleted) by the engine; the
 * person hears of them. */
static gboolean
apply (RelaisSyncController  *self,
       GError               **error)
{
  RelaisSyncReport report = { 0 };
  Refusals refusals = { 0 };
  gint64 start = g_get_monotonic_time ();
  gboolean ok;

  if (self->vault == NULL || !self->enrolled || self->spool == NULL || self->holds > 0)
    return TRUE;
  ok = relais_sync_apply_full (self->vault, self->spool, &report, on_refused, &refusals, error);
  if (refusals.count > 0)
    g_signal_emit (self, signals[REFUSED], 0, refusals.count, refusals.dossier, refusals.reason);
  g_free (refusals.dossier);
  g_free (refusals.reason);
  if (!ok)
    return FALSE;
  if (report.applied > 0 || report.rejected > 0)
    g_debug ("sync: applied %u operations in %" G_GINT64_FORMAT " ms, refused %u change sets, %u waiting for a key",
             report.applied, (g_get_monotonic_time () - start) / 1000, report.rejected, report.waiting);
  if (report.applied > 0)
    g_signal_emit (self, signals[APPLIED], 0, report.applied);
  return TRUE;
}

typedef struct {
  char     *vault_dir;
  guint     generation;
  gboolean  manual;
  gboolean  want_directory;
} ExchangeData;

static void
exchange_data_free (ExchangeData *data)
{
  g_free (data->vault_dir);
  g_free (data);
}

typedef struct {
  RelaisExchangeReport  report;
  GPtrArray            *users;   /* RelaisDirectoryUser, or NULL */
} ExchangeResult;

static void
exchange_result_free (ExchangeResult *result)
{
  g_clear_pointer (&result->users, g_ptr_array_unref);
  g_free (result);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ExchangeResult, exchange_result_free)

static void
exchange_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  ExchangeData *data = task_data;
  g_autoptr(RelaisSpool) spool = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(ExchangeResult) result = g_new0 (ExchangeResult, 1);

  /* Its own spool object: the main thread keeps using its one. */
  spool = relais_spool_open (data->vault_dir, &error);
  if (spool == NULL || !relais_spool_exchange (spool, &result->report, cancellable, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* Names for the authors the conflicts page shows.  Not having them is
   * no failure of the sync: the ids are shown instead. */
  if (data->want_directory)
    {
      g_autoptr(RelaisClient) client = relais_spool_make_client (spool, &error);

      if (client != NULL)
        result->users = relais_client_users (client, NULL, cancellable, &error);
      if (result->users == NULL)
        g_debug ("sync: no directory: %s", error != NULL ? error->message : "?");
    }
  g_task_return_pointer (task, g_steal_pointer (&result), (GDestroyNotify) exchange_result_free);
}

static void exchange_done (GObject *object, GAsyncResult *result, gpointer user_data);

/* ---- Filling the recovery wraps (PROTOCOL.md §5.2) ----------------------
 *
 * What relaisctl sync does after a complete sync.  Asking the server what
 * is missing needs no vault, and nearly always finds nothing this device
 * can fill: that part runs beside the window.  Only when the vault holds
 * a key to wrap does a worker run relais_sync_fill_recovery() with the
 * vault held, the window taking no input meanwhile (the vault's
 * connection is the main thread's).  A failure is no failure of the
 * sync, which completed: logged, and the next complete sync asks again. */

/* Bounds the question: a server that keeps answering cannot keep the
 * device busy (500 entries a page). */
#define FILL_MAX_PAGES 200

typedef struct _FillData {
  char         *vault_dir;
  RelaisVault  *vault;      /* the worker's while it fills (not owned) */
  guint         generation;
  /* The worker no longer uses the vault: what set_vault (NULL) waits for
   * when it cannot wait for the main loop (the window is being destroyed). */
  GMutex        mutex;
  GCond         cond;
  gboolean      done;
  /* set_vault () waited and dropped the hold: the result goes nowhere. */
  gboolean      abandoned;
} FillData;

static void
fill_data_free (FillData *data)
{
  g_free (data->vault_dir);
  g_mutex_clear (&data->mutex);
  g_cond_clear (&data->cond);
  g_free (data);
}

static FillData *
fill_data_new (RelaisSyncController *self)
{
  FillData *data = g_new0 (FillData, 1);

  data->vault_dir = g_strdup (relais_vault_get_dir (self->vault));
  data->generation = self->generation;
  g_mutex_init (&data->mutex);
  g_cond_init (&data->cond);
  return data;
}

static RelaisClient *
fill_client (const char  *vault_dir,
             GError     **error)
{
  /* Its own spool object: the main thread keeps using its one. */
  g_autoptr(RelaisSpool) spool = relais_spool_open (vault_dir, error);

  if (spool == NULL)
    return NULL;
  return relais_spool_make_client (spool, error);
}

/* In a worker, without the vault: every entry the server says is missing. */
static void
fill_ask_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  FillData *data = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisClient) client = fill_client (data->vault_dir, &error);
  g_autoptr(GPtrArray) missing = NULL;
  g_autofree char *after_dossier = NULL;
  g_autofree char *after_org = NULL;

  if (client == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  missing = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_recovery_missing_free);
  for (guint page_n = 0; page_n < FILL_MAX_PAGES; page_n++)
    {
      g_autoptr(GPtrArray) page = relais_client_recovery_missing (client, after_dossier, after_org,
                                                                  cancellable, &error);
      RelaisRecoveryMissing *last;

      if (page == NULL)
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
      if (page->len == 0)
        break;
      last = g_ptr_array_index (page, page->len - 1);
      g_free (after_dossier);
      g_free (after_org);
      after_dossier = g_strdup (last->dossier_id);
      after_org = g_strdup (last->org);
      for (guint i = 0; i < page->len; i++)
        g_ptr_array_add (missing, g_steal_pointer (&page->pdata[i]));
      g_ptr_array_set_free_func (page, NULL);
    }
  g_task_return_pointer (task, g_steal_pointer (&missing), (GDestroyNotify) g_ptr_array_unref);
}

/* Whether the vault holds a key of @missing that relais_sync_fill_recovery()
 * would wrap: the same rules (its own organisation's key, when learnt at
 * enrolment, is the only one it wraps to for that organisation). */
static gboolean
vault_can_fill (RelaisVault  *vault,
                GPtrArray    *missing,
                GError      **error)
{
  sqlite3 *db = relais_vault_get_db (vault);
  g_autoptr(sqlite3_stmt) identity = NULL;
  g_autoptr(sqlite3_stmt) key = NULL;
  g_autofree char *own_org = NULL;
  gconstpointer own_pk = NULL;
  int rc;

  if (sqlite3_prepare_v2 (db, "SELECT org, recovery_pk FROM sync_identity WHERE id = 1", -1,
                          &identity, NULL) != SQLITE_OK
      || sqlite3_prepare_v2 (db, "SELECT 1 FROM sync_key WHERE dossier = ?1 AND epoch = ?2", -1,
                             &key, NULL) != SQLITE_OK)
    {
      relais_vault_set_sqlite_error (vault, sqlite3_errcode (db), _("Could not read the vault"), error);
      return FALSE;
    }
  rc = sqlite3_step (identity);
  if (rc == SQLITE_ROW)
    {
      own_org = g_strdup ((const char *) sqlite3_column_text (identity, 0));
      if (sqlite3_column_type (identity, 1) == SQLITE_BLOB
          && sqlite3_column_bytes (identity, 1) == crypto_box_PUBLICKEYBYTES)
        own_pk = sqlite3_column_blob (identity, 1);
    }

  for (guint i = 0; i < missing->len; i++)
    {
      RelaisRecoveryMissing *entry = g_ptr_array_index (missing, i);

      if (own_pk != NULL && g_strcmp0 (entry->org, own_org) == 0
          && memcmp (entry->recovery_key, own_pk, crypto_box_PUBLICKEYBYTES) != 0)
        continue;
      for (guint j = 0; j < entry->epochs->len; j++)
        {
          sqlite3_reset (key);
          sqlite3_bind_text (key, 1, entry->dossier_id, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (key, 2, g_array_index (entry->epochs, guint32, j));
          rc = sqlite3_step (key);
          if (rc == SQLITE_ROW)
            return TRUE;
          if (rc != SQLITE_DONE)
            {
              relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
              return FALSE;
            }
        }
    }
  return FALSE;
}

/* In a worker, the vault held: the fill itself. */
static void
fill_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  FillData *data = task_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelaisClient) client = fill_client (data->vault_dir, &error);
  guint filled = 0;
  gboolean ok = FALSE;

  if (client != NULL)
    ok = relais_sync_fill_recovery (data->vault, client, &filled, cancellable, &error);
  g_mutex_lock (&data->mutex);
  data->done = TRUE;
  g_cond_signal (&data->cond);
  g_mutex_unlock (&data->mutex);
  if (!ok)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_int (task, filled);
}

/* Messages of the client and the vault name no person: a status, a
 * reason.  Not a warning when it was only cut. */
static void
fill_log_failure (const char   *what,
                  const GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
      || error->domain == RELAIS_CLIENT_ERROR)
    g_debug ("sync: recovery wraps not filled (%s; the next sync tries again): %s", what, error->message);
  else
    g_warning ("Recovery wraps not filled (%s; the next sync tries again): %s", what, error->message);
}

static void
fill_done (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  RelaisSyncController *self = RELAIS_SYNC_CONTROLLER (object);
  FillData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  gssize filled = g_task_propagate_int (G_TASK (result), &error);

  if (data->abandoned)
    return;
  g_assert (self->fill == data && self->fill_vault);
  self->fill = NULL;
  self->fill_vault = FALSE;
  g_clear_object (&self->fill_cancellable);
  if (filled < 0)
    fill_log_failure ("fill", error);
  else
    g_debug ("sync: filled %" G_GSSIZE_FORMAT " recovery wraps", filled);
  relais_sync_controller_release (self);
  update (self);
}

static void
fill_ask_done (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  RelaisSyncController *self = RELAIS_SYNC_CONTROLLER (object);
  FillData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) missing = g_task_propagate_pointer (G_TASK (result), &error);
  g_autoptr(GTask) task = NULL;
  FillData *fill;
  gboolean can_fill;

  /* Locked (or unlocked again) meanwhile: set_vault () let it go. */
  if (self->fill != data)
    return;
  self->fill = NULL;
  if (missing == NULL)
    {
      g_clear_object (&self->fill_cancellable);
      fill_log_failure ("asking", error);
      return;
    }
  /* A worker holds the vault, or a sync started: this one gives way, the
   * next complete sync asks again. */
  if (missing->len == 0 || self->vault == NULL || self->holds > 0 || self->busy)
    {
      g_clear_object (&self->fill_cancellable);
      return;
    }
  can_fill = vault_can_fill (self->vault, missing, &error);
  if (!can_fill)
    {
      g_clear_object (&self->fill_cancellable);
      if (error != NULL)
        fill_log_failure ("reading", error);
      return;
    }

  fill = fill_data_new (self);
  fill->vault = self->vault;
  relais_sync_controller_hold (self);
  self->fill = fill;
  self->fill_vault = TRUE;
  task = g_task_new (self, self->fill_cancellable, fill_done, NULL);
  g_task_set_source_tag (task, fill_ask_done);
  g_task_set_task_data (task, fill, (GDestroyNotify) fill_data_free);
  g_task_run_in_thread (task, fill_thread);
  /* The window stops taking input. */
  update (self);
}

/* After a complete sync, once: not while a fill runs or a worker holds
 * the vault. */
static void
start_fill (RelaisSyncController *self)
{
  g_autoptr(GTask) task = NULL;

  if (self->fill != NULL || self->vault == NULL || !self->enrolled || self->holds > 0)
    return;
  self->fill = fill_data_new (self);
  self->fill_cancellable = g_cancellable_new ();
  task = g_task_new (self, self->fill_cancellable, fill_ask_done, NULL);
  g_task_set_source_tag (task, start_fill);
  g_task_set_task_data (task, self->fill, (GDestroyNotify) fill_data_free);
  g_task_run_in_thread (task, fill_ask_thread);
}

/* Stops the fill under way.  The vault's part, if it runs, still ends in
 * its thread (libcurl notices within a second): is_filling () says when. */
static void
cancel_fill (RelaisSyncController *self)
{
  g_cancellable_cancel (self->fill_cancellable);
  if (!self->fill_vault)
    {
      /* Asking only: nothing of the vault to wait for. */
      self->fill = NULL;
      g_clear_object (&self->fill_cancellable);
    }
}

static void
finish (RelaisSyncController *self,
        gboolean              manual,
        const char           *failure)
{
  set_error (self, failure);
  update (self);
  g_signal_emit (self, signals[FINISHED], 0, manual, failure);
}

static gboolean
start_idle (gpointer user_data)
{
  RelaisSyncController *self = user_data;
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  gboolean manual = self->start_manual;
  ExchangeData *data;

  self->start_source = 0;
  if (!seal (self, NULL, &error))
    {
      self->busy = FALSE;
      finish (self, manual, error->message);
      return G_SOURCE_REMOVE;
    }

  data = g_new0 (ExchangeData, 1);
  data->vault_dir = g_strdup (relais_vault_get_dir (self->vault));
  data->generation = self->generation;
  data->manual = manual;
  data->want_directory = self->directory == NULL;

  task = g_task_new (self, self->cancellable, exchange_done, NULL);
  g_task_set_source_tag (task, start_idle);
  g_task_set_task_data (task, data, (GDestroyNotify) exchange_data_free);
  g_task_run_in_thread (task, exchange_thread);
  return G_SOURCE_REMOVE;
}

/* Says "Syncing…" at once, and seals (on the main thread: the vault's)
 * only once the window has had time to draw it (a frame is 17 ms; an idle
 * can run before the frame clock's next paint): the first seal after
 * enrolment takes seconds for thousands of dossiers (measured 3.8 s for
 * 2,000). */
#define START_DELAY_MS 50

static void
start_exchange (RelaisSyncController *self,
                gboolean              manual)
{
  self->busy = TRUE;
  self->start_manual = manual;
  update (self);
  self->start_source = g_timeout_add (START_DELAY_MS, start_idle, self);
}

static void
exchange_done (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  RelaisSyncController *self = RELAIS_SYNC_CONTROLLER (object);
  ExchangeData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(ExchangeResult) exchanged = NULL;
  RelaisExchangeReport *report = NULL;
  gboolean manual = data->manual;
  guint sealed = 0;

  exchanged = g_task_propagate_pointer (G_TASK (result), &error);
  if (exchanged != NULL)
    report = &exchanged->report;
  self->busy = FALSE;

  if (g_error_matches (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_REVOKED))
    {
      /* The spool is wiped already; the window wipes the vault.  Nothing
       * is sealed any more, not even at lock. */
      g_clear_pointer (&self->spool, relais_spool_free);
      self->enrolled = FALSE;
      g_signal_emit (self, signals[REVOKED], 0);
      return;
    }

  /* Locked meanwhile, or another vault: what was pulled waits in the
   * spool for the next unlock.  A sync asked for since then starts now. */
  if (data->generation != self->generation || self->vault == NULL)
    {
      if (self->vault != NULL && self->again && self->holds == 0)
        {
          gboolean again_manual = self->again_manual;

          self->again = FALSE;
          self->again_manual = FALSE;
          start_exchange (self, again_manual);
        }
      else
        update (self);
      return;
    }

  /* What arrived before a cut is applied all the same. */
  if (!apply (self, &local))
    {
      finish (self, manual, local->message);
      return;
    }

  if (report == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          update (self);
          return;
        }
      finish (self, manual, error->message);
      return;
    }

  g_debug ("sync: pushed %u, refused %u, pulled %u, registered %u",
           report->pushed, report->refused, report->pulled, report->registered);

  if (exchanged->users != NULL)
    {
      g_clear_pointer (&self->directory, g_hash_table_unref);
      self->directory = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      for (guint i = 0; i < exchanged->users->len; i++)
        {
          RelaisDirectoryUser *user = g_ptr_array_index (exchanged->users, i);

          if (user->user_id == NULL || user->name == NULL)
            continue;
          g_hash_table_insert (self->directory, g_strdup (user->user_id),
                               user->org != NULL && *user->org != '\0'
                               ? g_strdup_printf (_("%s (%s)"), user->name, user->org)
                               : g_strdup (user->name));
        }
    }

  /* What relais_sync_run() does after a complete exchange, which the
   * engine keeps to itself (mark_registered ()): every registration
   * queued before it reached the server, so that the next seal does not
   * queue it again (it would be counted as pending for ever).  Nothing
   * was sealed meanwhile: a seal during an exchange waits for its end,
   * and the one at lock time drops this result (generation). */
  if (!relais_vault_exec (self->vault, "UPDATE sync_dossier SET registered = 1 WHERE registered = 0",
                          &local))
    {
      finish (self, manual, local->message);
      return;
    }

  /* Keys that arrived may let retired change sets be sealed again, and
   * writes made during the exchange wait in the vault: once more, at
   * most, so that the count shown is true. */
  if (!seal (self, &sealed, &local))
    {
      finish (self, manual, local->message);
      return;
    }
  self->reachable = TRUE;
  finish (self, manual, NULL);
  if (self->holds > 0)
    {
      /* The release starts it. */
      self->again |= sealed > 0 && report->pushed + report->pulled > 0;
      return;
    }
  if (self->again || (sealed > 0 && report->pushed + report->pulled > 0))
    {
      gboolean again_manual = self->again_manual;

      self->again = FALSE;
      self->again_manual = FALSE;
      start_exchange (self, again_manual);
      /* Its end fills. */
      return;
    }
  start_fill (self);
}

static gboolean
seal_timeout (gpointer user_data)
{
  RelaisSyncController *self = user_data;
  g_autoptr(GError) error = NULL;

  self->seal_source = 0;
  if (self->holds > 0)
    {
      self->held_seal = TRUE;
      return G_SOURCE_REMOVE;
    }
  if (self->busy)
    {
      /* The exchange under way seals again when it ends. */
      return G_SOURCE_REMOVE;
    }
  if (!seal (self, NULL, &error))
    set_error (self, error->message);
  update (self);
  return G_SOURCE_REMOVE;
}

static gboolean
unlock_idle (gpointer user_data)
{
  RelaisSyncController *self = user_data;
  g_autoptr(GError) error = NULL;

  self->unlock_source = 0;
  if (self->holds > 0)
    {
      self->held_begin = TRUE;
      return G_SOURCE_REMOVE;
    }
  if (!self->busy && !apply (self, &error))
    set_error (self, error->message);
  update (self);
  if (self->network_ok)
    relais_sync_controller_sync (self, FALSE);
  return G_SOURCE_REMOVE;
}

static gboolean
periodic_timeout (gpointer user_data)
{
  RelaisSyncController *self = user_data;

  if (self->network_ok)
    relais_sync_controller_sync (self, FALSE);
  return G_SOURCE_CONTINUE;
}

static void
on_network_changed (RelaisSyncController *self)
{
  gboolean was_ok = self->network_ok;

  self->network_ok = network_usable (self->monitor);
  if (!g_network_monitor_get_network_available (self->monitor))
    self->reachable = FALSE;
  if (self->network_ok && !was_ok)
    {
      g_debug ("sync: the network is back");
      relais_sync_controller_sync (self, FALSE);
    }
  g_signal_emit (self, signals[CHANGED], 0);
}

static void
relais_sync_controller_dispose (GObject *object)
{
  RelaisSyncController *self = (RelaisSyncController *)object;

  relais_sync_controller_set_vault (self, NULL);
  if (self->monitor != NULL)
    g_signal_handlers_disconnect_by_data (self->monitor, self);
  g_clear_object (&self->monitor);

  G_OBJECT_CLASS (relais_sync_controller_parent_class)->dispose (object);
}

static void
relais_sync_controller_finalize (GObject *object)
{
  RelaisSyncController *self = (RelaisSyncController *)object;

  g_clear_pointer (&self->error, g_free);
  g_clear_object (&self->fill_cancellable);

  G_OBJECT_CLASS (relais_sync_controller_parent_class)->finalize (object);
}

static void
relais_sync_controller_class_init (RelaisSyncControllerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = relais_sync_controller_dispose;
  object_class->finalize = relais_sync_controller_finalize;

  signals[CHANGED] =
    g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[APPLIED] =
    g_signal_new ("applied", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_UINT);
  signals[FINISHED] =
    g_signal_new ("finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_BOOLEAN, G_TYPE_STRING);
  signals[REVOKED] =
    g_signal_new ("revoked", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[REFUSED] =
    g_signal_new ("refused", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3, G_TYPE_UINT, G_TYPE_STRING, G_TYPE_STRING);
}

static void
watch_monitor (RelaisSyncController *self,
               GNetworkMonitor      *monitor)
{
  if (self->monitor != NULL)
    g_signal_handlers_disconnect_by_data (self->monitor, self);
  g_set_object (&self->monitor, monitor);
  g_signal_connect_swapped (self->monitor, "network-changed",
                            G_CALLBACK (on_network_changed), self);
  g_signal_connect_swapped (self->monitor, "notify::network-metered",
                            G_CALLBACK (on_network_changed), self);
  g_signal_connect_swapped (self->monitor, "notify::connectivity",
                            G_CALLBACK (on_network_changed), self);
}

static void
relais_sync_controller_init (RelaisSyncController *self)
{
  watch_monitor (self, g_network_monitor_get_default ());
  self->network_ok = network_usable (self->monitor);
}

void
relais_sync_controller_set_network_monitor (RelaisSyncController *self,
                                            GNetworkMonitor      *monitor)
{
  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));
  g_return_if_fail (G_IS_NETWORK_MONITOR (monitor));

  watch_monitor (self, monitor);
  on_network_changed (self);
}

RelaisSyncController *
relais_sync_controller_new (void)
{
  return g_object_new (RELAIS_TYPE_SYNC_CONTROLLER, NULL);
}

void
relais_sync_controller_set_vault (RelaisSyncController *self,
                                  RelaisVault          *vault)
{
  g_autoptr(GError) error = NULL;

  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));

  if (self->vault == vault)
    return;

  if (self->fill != NULL)
    {
      FillData *fill = self->fill;
      gboolean was_vault = self->fill_vault;

      cancel_fill (self);
      if (was_vault)
        {
          gint64 start = g_get_monotonic_time ();

          /* The window locks after the fill's end (is_filling ()): this
           * is the window going away.  Its worker, cancelled, stops
           * using the vault within a second (libcurl's progress calls):
           * the vault must not close under it. */
          g_mutex_lock (&fill->mutex);
          while (!fill->done)
            g_cond_wait (&fill->cond, &fill->mutex);
          g_mutex_unlock (&fill->mutex);
          g_debug ("sync: waited %" G_GINT64_FORMAT " ms for the recovery fill to stop",
                   (g_get_monotonic_time () - start) / 1000);
          fill->abandoned = TRUE;
          self->fill = NULL;
          self->fill_vault = FALSE;
          g_clear_object (&self->fill_cancellable);
          self->holds--;
        }
    }

  if (self->vault != NULL)
    {
      /* Sealed now, the background service can send what was written
       * even while the vault stays locked.  Safe beside an exchange under
       * way: the spool writes every file whole, for the background
       * service's sake too. */
      if (!seal (self, NULL, &error))
        g_warning ("Could not seal the last changes: %s", error->message);
      g_clear_error (&error);
    }

  self->generation++;
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_handle_id (&self->periodic_source, g_source_remove);
  g_clear_handle_id (&self->seal_source, g_source_remove);
  g_clear_handle_id (&self->unlock_source, g_source_remove);
  if (self->start_source != 0)
    {
      /* Not started: no thread to wait for. */
      g_clear_handle_id (&self->start_source, g_source_remove);
      self->busy = FALSE;
    }
  g_clear_pointer (&self->spool, relais_spool_free);
  g_clear_pointer (&self->directory, g_hash_table_unref);
  self->vault = vault;
  self->enrolled = FALSE;
  /* An exchange cancelled goes on in its thread until libcurl notices:
   * a new one waits for it (busy stays TRUE until then). */
  self->again = FALSE;
  self->again_manual = FALSE;
  self->held_seal = FALSE;
  self->held_begin = FALSE;
  set_error (self, NULL);

  if (vault == NULL)
    {
      update (self);
      return;
    }

  self->cancellable = g_cancellable_new ();
  self->enrolled = relais_sync_is_enrolled (vault);
  if (!self->enrolled)
    {
      update (self);
      return;
    }

  self->spool = relais_spool_open (relais_vault_get_dir (vault), &error);
  if (self->spool == NULL)
    {
      set_error (self, error->message);
      update (self);
      return;
    }
  {
    g_autofree char *last_error = relais_spool_get_last_error (self->spool);

    set_error (self, last_error);
  }

  self->periodic_source = g_timeout_add_seconds (PERIODIC_SECONDS, periodic_timeout, self);
  update (self);
}

void
relais_sync_controller_begin (RelaisSyncController *self)
{
  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));

  if (self->vault == NULL || !self->enrolled || self->spool == NULL || self->unlock_source != 0)
    return;
  self->unlock_source = g_idle_add (unlock_idle, self);
}

void
relais_sync_controller_sync (RelaisSyncController *self,
                             gboolean              manual)
{
  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));

  if (self->vault == NULL || !self->enrolled || self->spool == NULL)
    return;
  if (self->busy || self->holds > 0)
    {
      /* Never two at once, nor beside a worker using the vault: this one
       * follows. */
      self->again = TRUE;
      self->again_manual |= manual;
      return;
    }
  g_clear_handle_id (&self->seal_source, g_source_remove);
  start_exchange (self, manual);
}

void
relais_sync_controller_note_write (RelaisSyncController *self)
{
  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));

  if (self->vault == NULL || !self->enrolled)
    return;
  g_clear_handle_id (&self->seal_source, g_source_remove);
  self->seal_source = g_timeout_add_seconds (SEAL_DELAY_SECONDS, seal_timeout, self);
}

gboolean
relais_sync_controller_is_enrolled (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), FALSE);

  return self->vault != NULL && self->enrolled;
}

gboolean
relais_sync_controller_is_busy (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), FALSE);

  return self->busy || self->fill_vault;
}

/**
 * relais_sync_controller_is_filling:
 *
 * A worker thread fills recovery wraps with the vault (after a complete
 * sync): nothing else may use the vault until this turns FALSE ("changed"
 * tells).  relais_sync_controller_cancel_fill() shortens it.
 */
gboolean
relais_sync_controller_is_filling (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), FALSE);

  return self->fill_vault;
}

/* Before a lock or a close: the fill stops soon ("changed" tells). */
void
relais_sync_controller_cancel_fill (RelaisSyncController *self)
{
  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));

  if (self->fill != NULL)
    cancel_fill (self);
}

RelaisSyncState
relais_sync_controller_get_state (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), RELAIS_SYNC_STATE_NOT_ENROLLED);

  if (self->vault == NULL || !self->enrolled)
    return RELAIS_SYNC_STATE_NOT_ENROLLED;
  if (self->busy)
    return RELAIS_SYNC_STATE_SYNCING;
  if (!self->reachable && !g_network_monitor_get_network_available (self->monitor))
    return RELAIS_SYNC_STATE_OFFLINE;
  if (self->error != NULL)
    return RELAIS_SYNC_STATE_ERROR;
  return RELAIS_SYNC_STATE_IDLE;
}

guint
relais_sync_controller_get_pending (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), 0);

  return self->pending;
}

gint64
relais_sync_controller_get_last_success (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), 0);

  return self->last_success;
}

GHashTable *
relais_sync_controller_get_directory (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), NULL);

  return self->directory;
}

const char *
relais_sync_controller_get_error (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), NULL);

  return self->error;
}

/**
 * relais_sync_controller_hold:
 *
 * A worker thread is about to use the vault (enrolment, sharing): from
 * now until relais_sync_controller_release(), nothing of the controller
 * touches the vault.  An exchange under way is cancelled (what it pulled
 * waits in the spool); wait for relais_sync_controller_is_busy() to turn
 * FALSE before starting the worker: the exchange's end applies what came,
 * on the main thread.  Holds nest.
 */
void
relais_sync_controller_hold (RelaisSyncController *self)
{
  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));

  /* A person's action goes before the fill: it is cut (the next sync
   * fills), and its end is waited for like an exchange's (is_busy ()). */
  if (self->fill != NULL)
    cancel_fill (self);
  if (self->holds++ > 0)
    return;
  if (self->seal_source != 0)
    {
      g_clear_handle_id (&self->seal_source, g_source_remove);
      self->held_seal = TRUE;
    }
  if (self->unlock_source != 0)
    {
      g_clear_handle_id (&self->unlock_source, g_source_remove);
      self->held_begin = TRUE;
    }
  if (self->start_source != 0)
    {
      /* Not started: it starts again at release. */
      g_clear_handle_id (&self->start_source, g_source_remove);
      self->busy = FALSE;
      self->again = TRUE;
      self->again_manual |= self->start_manual;
      update (self);
    }
  else if (self->busy && self->cancellable != NULL)
    {
      /* The task keeps its reference to the cancelled one. */
      g_cancellable_cancel (self->cancellable);
      g_clear_object (&self->cancellable);
      self->cancellable = g_cancellable_new ();
      self->again = TRUE;
    }
}

/* Ends a hold: what was asked meanwhile (a seal, the unlock's apply, a
 * sync) starts now. */
void
relais_sync_controller_release (RelaisSyncController *self)
{
  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));
  g_return_if_fail (self->holds > 0);

  if (--self->holds > 0)
    return;
  if (self->vault == NULL)
    return;
  if (self->held_begin)
    {
      self->held_begin = FALSE;
      relais_sync_controller_begin (self);
    }
  if (self->held_seal)
    {
      self->held_seal = FALSE;
      relais_sync_controller_note_write (self);
    }
  if (self->again && !self->busy)
    {
      gboolean again_manual = self->again_manual;

      self->again = FALSE;
      self->again_manual = FALSE;
      relais_sync_controller_sync (self, again_manual);
    }
}

/* Held by a worker of a dialog (enrolment, sharing); the fill's hold is
 * is_filling ()'s. */
gboolean
relais_sync_controller_is_held (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), FALSE);

  return self->holds > (self->fill_vault ? 1 : 0);
}

/**
 * relais_sync_controller_reload:
 *
 * The vault was enrolled (or its identity changed) behind the
 * controller's back: reads it again, as at unlock.
 */
void
relais_sync_controller_reload (RelaisSyncController *self)
{
  RelaisVault *vault;

  g_return_if_fail (RELAIS_IS_SYNC_CONTROLLER (self));

  vault = self->vault;
  if (vault == NULL)
    return;
  relais_sync_controller_set_vault (self, NULL);
  relais_sync_controller_set_vault (self, vault);
}
