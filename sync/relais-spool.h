#pragma once

#include <gio/gio.h>

#include "relais-client.h"

G_BEGIN_DECLS

/* The spool (PROTOCOL.md §7): sealed change sets waiting beside the vault,
 * so that a sync needs no passphrase.  Everything in it is ciphertext,
 * wrapped keys or public data, except device.key (mode 0600), which can
 * sign requests but neither read nor forge a change set.
 *
 *   VAULT_DIR/spool/             0700
 *     state.json                 server, cacert, user id, org, device id,
 *                                pull cursor, last success, last error,
 *                                the counter of in/ names
 *     device.key                 0600, the device's Ed25519 secret key
 *     lock                       flock()ed by an exchange: one at a time
 *     out/ID.rlcs                envelopes to push (ID: change-set id, hex)
 *     register/DOSSIER.json      dossiers to register before their pushes
 *     in/SEQ-ID.rlcs             pulled envelopes, to apply at unlock, in
 *                                name order (SEQ: 20 zero-padded digits of
 *                                a local counter)
 *     keys/DOSSIER.json          the latest wrapped keys and members of a
 *                                dossier, from pulls
 *     retired/ID.rlcs            pushes refused with epoch_retired: the
 *                                unlocked engine re-seals them at the new epoch
 *     refused/ID.rlcs            pushes and registrations (DOSSIER.json) the
 *                                server refused for good (not_member after a
 *                                removal, author_mismatch…): kept for a
 *                                person to look at, never sent again
 *
 * Every file is written whole (temporary file, fsync, rename, fsync of the
 * directory) before the step that depends on it: a pulled envelope is on
 * disk before the cursor that passes it is saved; a pushed one leaves out/
 * only after the server said stored or duplicate.  Names starting with a
 * dot (".tmp-", ".pull-") are files being written: never listed.  A pulled
 * page is written hidden, made durable by one syncfs(), then named, so a
 * name always holds a whole file. */

typedef struct _RelaisSpool RelaisSpool;

/* Opens (creating the directories when missing) the spool of the vault in
 * @vault_dir. */
RelaisSpool *relais_spool_open  (const char   *vault_dir,
                                 GError      **error);
void         relais_spool_free  (RelaisSpool  *spool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisSpool, relais_spool_free)

const char  *relais_spool_get_dir (RelaisSpool *spool);

/* Enrolment writes the identity; afterwards the spool can sync alone. */
typedef struct {
  char   *server;
  char   *cacert;      /* NULL: the system's CAs */
  char   *user_id;
  char   *org;
  char   *device_id;
} RelaisSpoolIdentity;

void     relais_spool_identity_free (RelaisSpoolIdentity *identity);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisSpoolIdentity, relais_spool_identity_free)

gboolean relais_spool_set_identity (RelaisSpool                *spool,
                                    const RelaisSpoolIdentity  *identity,
                                    const guint8               *device_sk,
                                    GError                    **error);
/* NULL (no error) when the vault is not enrolled. */
RelaisSpoolIdentity *relais_spool_get_identity (RelaisSpool  *spool,
                                                GError      **error);
gboolean relais_spool_is_enrolled (RelaisSpool *spool);

/* A client for the spool's server, signing with its device key. */
RelaisClient *relais_spool_make_client (RelaisSpool  *spool,
                                        GError      **error);

/* Queues an envelope to push (its id is read from its header). */
gboolean relais_spool_add_out (RelaisSpool  *spool,
                               GBytes       *envelope,
                               GError      **error);
/* The same for many envelopes (GBytes) at once, durable together with
 * one sync of the file system instead of two fsyncs each: what sealing
 * thousands of change sets should call.  All or nothing when one is not
 * an envelope; after a failure of the disk, some may be queued. */
gboolean relais_spool_add_out_many (RelaisSpool  *spool,
                                    GPtrArray    *envelopes,
                                    GError      **error);
/* Queues a dossier's registration (POST /v1/dossiers, sent before any
 * push): @members and @recovery_wrapped_key as relais_client_dossier_create()
 * takes them. */
gboolean relais_spool_add_registration (RelaisSpool  *spool,
                                        const char   *dossier_id,
                                        GPtrArray    *members,
                                        GBytes       *recovery_wrapped_key,
                                        GError      **error);

/* Between these two, relais_spool_add_out() and _add_registration()
 * write hidden files that commit makes durable together (one sync of the
 * file system instead of two fsyncs each) and then names: nothing is
 * queued, and nothing visible, until commit returns TRUE.  Freeing the
 * spool without committing drops the batch. */
void     relais_spool_begin_batch  (RelaisSpool  *spool);
gboolean relais_spool_commit_batch (RelaisSpool  *spool,
                                    GError      **error);

/* Envelopes waiting in out/ and retired/, and registrations. */
guint    relais_spool_count_pending (RelaisSpool *spool);

/* Pulled envelopes waiting in in/, in order: element type char * (file
 * names, relative to in/). */
GPtrArray *relais_spool_list_in   (RelaisSpool  *spool,
                                   GError      **error);
GBytes    *relais_spool_read_in   (RelaisSpool  *spool,
                                   const char   *name,
                                   GError      **error);
gboolean   relais_spool_remove_in (RelaisSpool  *spool,
                                   const char   *name,
                                   GError      **error);
/* The keys pulls brought for @dossier_id, or NULL (no error) if none. */
RelaisDossierKeys *relais_spool_get_keys (RelaisSpool  *spool,
                                          const char   *dossier_id,
                                          GError      **error);
/* Stores @keys as the latest for their dossier (what a pull does; also
 * for tests and for keys fetched by the engine). */
gboolean   relais_spool_set_keys (RelaisSpool              *spool,
                                  const RelaisDossierKeys  *keys,
                                  GError                  **error);
/* Forgets them, so that the next exchange fetches them again (after an
 * envelope did not open for want of a key or a member). */
gboolean   relais_spool_forget_keys (RelaisSpool  *spool,
                                     const char   *dossier_id,
                                     GError      **error);

/* Envelopes refused with epoch_retired (element type char *, names
 * relative to retired/), to re-seal then remove. */
GPtrArray *relais_spool_list_retired   (RelaisSpool  *spool,
                                        GError      **error);
GBytes    *relais_spool_read_retired   (RelaisSpool  *spool,
                                        const char   *name,
                                        GError      **error);
gboolean   relais_spool_remove_retired (RelaisSpool  *spool,
                                        const char   *name,
                                        GError      **error);

typedef struct {
  guint pushed;      /* stored or duplicate (a retried push counts once) */
  guint refused;     /* refused by the server: moved to retired/ or refused/ */
  guint pulled;      /* envelopes written to in/ */
  guint registered;  /* dossiers registered */
} RelaisExchangeReport;

/* What `relaisctl sync --background` and the app's worker thread do,
 * without the vault: registrations, then pushes (100 per request), then
 * paged pulls into in/ with their keys, saving the cursor after each page.
 * Also fetches the keys of dossiers in in/ that keys/ lacks.  Returns TRUE
 * only when the whole exchange completed; on a cut it keeps everything
 * done so far and fails with the client's error (the next exchange
 * resumes).  A change set or registration the server refuses (other than
 * epoch_retired, which moves to retired/) moves to refused/ and is counted
 * in @report->refused: a refusal is the server's final word on that
 * envelope (a member removed from a dossier stays removed), and left in
 * out/ it would fail every later sync.  The rest of the exchange goes on,
 * then this exchange fails with the first refusal's code (FORBIDDEN,
 * CONFLICT…), not transient, so the person is told once; the next one
 * completes.  While
 * another exchange of the spool runs, fails at once with UNAVAILABLE.  On
 * REVOKED, wipes the spool; the caller wipes the vault. */
gboolean relais_spool_exchange (RelaisSpool           *spool,
                                RelaisExchangeReport  *report,
                                GCancellable          *cancellable,
                                GError               **error);

/* Given the pulled pages (element type RelaisPullPage, in order: one or
 * a few, those fetched by then) by relais_spool_exchange_direct(), on
 * the calling thread.  It applies what it can and commits it (the last
 * page's cursor is saved once it returns TRUE), and adds to @keep
 * (element type GBytes) the envelopes that must wait in in/ (for a key
 * still missing).  FALSE with @error stops the exchange before the
 * cursor moves past these pages. */
typedef gboolean (*RelaisSpoolPageFunc) (GPtrArray       *pages,
                                         GPtrArray       *keep,
                                         gpointer         user_data,
                                         GError         **error);

/* relais_spool_exchange() for a caller holding the unlocked vault
 * (`relaisctl sync`): pulled pages go to @page_func instead of in/ and
 * keys/, the next pages (up to 8) being fetched on a worker thread while
 * @page_func takes the current ones; only what @page_func keeps is
 * written to in/.  @report->pulled counts every envelope received.  A
 * failed fetch ends it after the pages already taken, whose cursors are
 * saved (FALSE, with the client's error).  Everything else (lock,
 * registrations, pushes, refusals, REVOKED, the outcome recorded) as
 * relais_spool_exchange(). */
gboolean relais_spool_exchange_direct (RelaisSpool           *spool,
                                       RelaisExchangeReport  *report,
                                       RelaisSpoolPageFunc    page_func,
                                       gpointer               user_data,
                                       GCancellable          *cancellable,
                                       GError               **error);

/* When the last complete exchange ended (Unix seconds, 0 if never) and
 * the last failure's message (NULL if the last exchange completed). */
gint64   relais_spool_get_last_success (RelaisSpool *spool);
char    *relais_spool_get_last_error   (RelaisSpool *spool);

/* Deletes the spool's files (revoked device). */
gboolean relais_spool_wipe (RelaisSpool  *spool,
                            GError      **error);

G_END_DECLS
