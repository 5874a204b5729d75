#define G_LOG_DOMAIN "relais-sync"

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <sodium.h>
#include <sqlite3.h>

#include "relais-changeset.h"
#include "relais-keys.h"
#include "relais-oplog.h"
#include "relais-sync-recovery.h"

/* One pass asks page after page (the server orders entries by dossier then
 * organisation and resumes after the last one given).  An entry lists at
 * most 1,000 epochs: when one was that long and this pass filled
 * something, another pass picks up the rest.  Bounded, so that a server
 * that keeps answering cannot keep the device busy. */
#define MAX_PAGES  10000
#define MAX_PASSES 100
#define LONG_ENTRY 1000

/* The key of @dossier at @epoch, copied into guarded memory, or NULL (no
 * error) when the vault does not hold it. */
static guint8 *
vault_key (RelaisVault  *vault,
           const char   *dossier,
           guint32       epoch,
           GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  guint8 *key;
  int rc;

  stmt = relais_oplog_prepare (vault, "SELECT key FROM sync_key WHERE dossier = ?1 AND epoch = ?2",
                               error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, dossier, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, epoch);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    return NULL;
  if (rc != SQLITE_ROW)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return NULL;
    }
  if (sqlite3_column_type (stmt, 0) != SQLITE_BLOB
      || sqlite3_column_bytes (stmt, 0) != RELAIS_DOSSIER_KEY_SIZE)
    {
      g_set_error_literal (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED,
                           _("A dossier key in the vault is damaged."));
      return NULL;
    }
  key = relais_dossier_key_new ();
  memcpy (key, sqlite3_column_blob (stmt, 0), RELAIS_DOSSIER_KEY_SIZE);
  return key;
}

/* This device's organisation and the recovery key it learnt at
 * enrolment (*@out_has_key FALSE when it learnt none). */
static gboolean
own_recovery_key (RelaisVault  *vault,
                  char        **out_org,
                  guint8        out_pk[crypto_box_PUBLICKEYBYTES],
                  gboolean     *out_has_key,
                  GError      **error)
{
  g_auto(RelaisStmt) stmt = NULL;
  int rc;

  *out_org = NULL;
  *out_has_key = FALSE;
  stmt = relais_oplog_prepare (vault, "SELECT org, recovery_pk FROM sync_identity WHERE id = 1", error);
  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("This vault is not enrolled with a sync server: run “relaisctl enroll” first."));
      return FALSE;
    }
  if (rc != SQLITE_ROW)
    {
      relais_vault_set_sqlite_error (vault, rc, _("Could not read the vault"), error);
      return FALSE;
    }
  *out_org = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  if (sqlite3_column_type (stmt, 1) == SQLITE_BLOB
      && sqlite3_column_bytes (stmt, 1) == crypto_box_PUBLICKEYBYTES)
    {
      memcpy (out_pk, sqlite3_column_blob (stmt, 1), crypto_box_PUBLICKEYBYTES);
      *out_has_key = TRUE;
    }
  return TRUE;
}

/* A refusal that concerns this dossier alone: it changed between the
 * question and the answer (a member left, a rotation, the organisation's
 * last member removed).  The next sync asks again. */
static gboolean
is_dossier_refusal (const GError *error)
{
  return g_error_matches (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_FORBIDDEN)
         || g_error_matches (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NOT_FOUND)
         || g_error_matches (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_CONFLICT);
}

/* Wraps and posts what the vault holds of @entry's epochs.  *@out_filled
 * grows by what the server took. */
static gboolean
fill_entry (RelaisVault                  *vault,
            RelaisClient                 *client,
            const RelaisRecoveryMissing  *entry,
            guint                        *out_filled,
            GCancellable                 *cancellable,
            GError                      **error)
{
  g_autoptr(GPtrArray) wraps = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  g_autoptr(GError) local_error = NULL;

  for (guint i = 0; i < entry->epochs->len; i++)
    {
      guint32 epoch = g_array_index (entry->epochs, guint32, i);
      g_autoptr(GBytes) wrapped = NULL;
      guint8 *key = vault_key (vault, entry->dossier_id, epoch, error);

      if (key == NULL)
        {
          if (error != NULL && *error != NULL)
            return FALSE;
          continue;
        }
      wrapped = relais_dossier_key_wrap (key, entry->dossier_id, epoch, entry->recovery_key);
      relais_dossier_key_free (key);
      g_ptr_array_add (wraps, relais_wrapped_key_new (NULL, epoch, wrapped));
    }
  if (wraps->len == 0)
    return TRUE;
  if (!relais_client_recovery_add (client, entry->dossier_id, entry->org, wraps, cancellable,
                                   &local_error))
    {
      if (!is_dossier_refusal (local_error))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      /* No dossier id or organisation in the log: ids are not personal,
       * but the organisation's name says who works with whom. */
      g_debug ("recovery wraps of one dossier refused: %s", local_error->message);
      return TRUE;
    }
  *out_filled += wraps->len;
  return TRUE;
}

gboolean
relais_sync_fill_recovery (RelaisVault   *vault,
                           RelaisClient  *client,
                           guint         *out_filled,
                           GCancellable  *cancellable,
                           GError       **error)
{
  g_autofree char *own_org = NULL;
  guint8 own_pk[crypto_box_PUBLICKEYBYTES];
  gboolean own_has_key;
  guint filled = 0;

  g_return_val_if_fail (vault != NULL && client != NULL, FALSE);

  if (out_filled != NULL)
    *out_filled = 0;
  if (!own_recovery_key (vault, &own_org, own_pk, &own_has_key, error))
    return FALSE;

  for (guint pass = 0; pass < MAX_PASSES; pass++)
    {
      g_autofree char *after_dossier = NULL;
      g_autofree char *after_org = NULL;
      gboolean long_entry = FALSE;
      guint filled_before = filled;

      for (guint page_n = 0; page_n < MAX_PAGES; page_n++)
        {
          g_autoptr(GPtrArray) page = relais_client_recovery_missing (client, after_dossier, after_org,
                                                                      cancellable, error);
          RelaisRecoveryMissing *last;

          if (page == NULL)
            return FALSE;
          if (page->len == 0)
            break;
          for (guint i = 0; i < page->len; i++)
            {
              RelaisRecoveryMissing *entry = g_ptr_array_index (page, i);

              /* The server may not swap the recovery key this device
               * learnt for its own organisation. */
              if (own_has_key && g_strcmp0 (entry->org, own_org) == 0
                  && sodium_memcmp (entry->recovery_key, own_pk, sizeof own_pk) != 0)
                {
                  g_warning ("The server offers another recovery key for this device's organisation "
                             "than the one learnt at enrolment: not wrapping to it");
                  continue;
                }
              long_entry |= entry->epochs->len >= LONG_ENTRY;
              if (!fill_entry (vault, client, entry, &filled, cancellable, error))
                return FALSE;
            }
          /* Entries come strictly ordered (the client checks), so
           * resuming after the last one always moves on. */
          last = g_ptr_array_index (page, page->len - 1);
          g_free (after_dossier);
          g_free (after_org);
          after_dossier = g_strdup (last->dossier_id);
          after_org = g_strdup (last->org);
        }
      if (!long_entry || filled == filled_before)
        break;
    }
  if (out_filled != NULL)
    *out_filled = filled;
  return TRUE;
}
