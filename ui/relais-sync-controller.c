#define G_LOG_DOMAIN "relais-ui"

#include "config.h"

#include <glib/gi18n.h>

#include "relais-client.h"
#include "relais-spool.h"
#include "relais-sync-controller.h"
#include "relais-sync-engine.h"

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

static gboolean
network_usable (GNetworkMonitor *monitor)
{
  return g_network_monitor_get_network_available (monitor)
         && !g_network_monitor_get_network_metered (monitor)
         && g_network_monitor_get_connectivity (monitor) == G_NETWORK_CONNECTIVITY_FULL;
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
    }
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
relais_sync_controller_init (RelaisSyncController *self)
{
  self->monitor = g_object_ref (g_network_monitor_get_default ());
  self->network_ok = network_usable (self->monitor);
  g_signal_connect_swapped (self->monitor, "network-changed",
                            G_CALLBACK (on_network_changed), self);
  g_signal_connect_swapped (self->monitor, "notify::network-metered",
                            G_CALLBACK (on_network_changed), self);
  g_signal_connect_swapped (self->monitor, "notify::connectivity",
                            G_CALLBACK (on_network_changed), self);
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

  return self->busy;
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

gboolean
relais_sync_controller_is_held (RelaisSyncController *self)
{
  g_return_val_if_fail (RELAIS_IS_SYNC_CONTROLLER (self), FALSE);

  return self->holds > 0;
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
