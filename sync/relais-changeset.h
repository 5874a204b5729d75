#pragma once

#include <glib.h>
#include <sodium.h>

#include "relais-oplog.h"
#include "relais-sync-error.h"

G_BEGIN_DECLS

/* A change set: the operations one device made to one dossier, sealed with
 * the dossier key (XChaCha20-Poly1305) and signed once by the author
 * (Ed25519).  The byte layout is in PROTOCOL.md, "Change-set envelope". */

#define RELAIS_CHANGESET_VERSION        1
#define RELAIS_CHANGESET_ID_SIZE        16
#define RELAIS_CHANGESET_MAX_SIZE       (1024 * 1024)   /* a whole envelope */
#define RELAIS_CHANGESET_MAX_OPS        10000
#define RELAIS_CHANGESET_MAX_ID_LEN     64    /* dossier, user and device ids */
#define RELAIS_DOSSIER_KEY_SIZE         crypto_aead_xchacha20poly1305_ietf_KEYBYTES

/* What the header tells before anything is checked: enough for the server
 * to file an envelope, and for a peer to find the keys to open it. */
typedef struct {
  guint8  id[RELAIS_CHANGESET_ID_SIZE];
  char   *dossier;
  guint32 epoch;
  guint8  author_key[crypto_sign_PUBLICKEYBYTES];
} RelaisChangesetHeader;

void relais_changeset_header_clear (RelaisChangesetHeader *header);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (RelaisChangesetHeader, relais_changeset_header_clear)

/* Reads the header of @data and checks every length against @len and the
 * limits; nothing is verified.  Never reads outside @data. */
gboolean relais_changeset_peek (const guint8          *data,
                                gsize                  len,
                                RelaisChangesetHeader *out_header,
                                GError               **error);

/* Checks the author's signature over the whole envelope against the key
 * in its header (what the server does before storing a push; it holds no
 * dossier key).  Whether that key is a member's is the caller's business. */
G_GNUC_WARN_UNUSED_RESULT
gboolean relais_changeset_verify (const guint8 *data,
                                  gsize         len,
                                  GError      **error);

/* Seals @ops (element type RelaisOp, all of dossier @dossier, author
 * @author and device @device) into a new envelope with a fresh random id.
 * @sign_sk is the author's Ed25519 secret key.  Fails with TOO_LARGE when
 * the envelope would pass RELAIS_CHANGESET_MAX_SIZE (split the ops). */
GBytes  *relais_changeset_seal (const char    *dossier,
                                guint32        epoch,
                                const guint8  *dossier_key,
                                const char    *author,
                                const char    *device,
                                const guint8  *sign_sk,
                                GPtrArray     *ops,
                                GError       **error);

/* The same with a given id and nonce.  For the known-answer tests only:
 * a nonce must never be reused with one key. */
GBytes  *relais_changeset_seal_with_nonce (const char    *dossier,
                                           guint32        epoch,
                                           const guint8  *dossier_key,
                                           const char    *author,
                                           const char    *device,
                                           const guint8  *sign_sk,
                                           GPtrArray     *ops,
                                           const guint8  *id,
                                           const guint8  *nonce,
                                           GError       **error);

/* Returns the dossier key of @dossier at @epoch (32 bytes, owned by the
 * caller of relais_changeset_open()), or NULL when that epoch is unknown. */
typedef const guint8 *(*RelaisDossierKeyFunc) (const char *dossier,
                                               guint32     epoch,
                                               gpointer    user_data);
/* Returns the user id that owns the Ed25519 public key @sign_pk as a member
 * of @dossier (owned by the callee), or NULL when it is not a member's. */
typedef const char   *(*RelaisAuthorFunc)     (const char   *dossier,
                                               const guint8 *sign_pk,
                                               gpointer      user_data);

typedef struct {
  RelaisChangesetHeader header;
  char      *author;   /* the user id that signed, as @author_func said */
  char      *device;
  GPtrArray *ops;      /* RelaisOp, dossier/author/device filled from the envelope */
} RelaisChangeset;

void relais_changeset_free (RelaisChangeset *changeset);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisChangeset, relais_changeset_free)

/* Checks and opens an envelope: its layout (MALFORMED, TOO_LARGE), that it
 * belongs to @expected_dossier when not NULL (DOSSIER_MISMATCH), that its
 * author is a member (AUTHOR_UNKNOWN), the signature (SIGNATURE), that the
 * epoch's key is known (EPOCH_UNKNOWN), the seal (SEAL), then the
 * operations inside (MALFORMED).  Returns NULL with an error naming the
 * first check that failed. */
G_GNUC_WARN_UNUSED_RESULT
RelaisChangeset *relais_changeset_open (const guint8         *data,
                                        gsize                 len,
                                        const char           *expected_dossier,
                                        RelaisDossierKeyFunc  key_func,
                                        RelaisAuthorFunc      author_func,
                                        gpointer              user_data,
                                        GError              **error);

/* base64url without padding, as the JSON API writes binary fields. */
char    *relais_sync_base64_encode (const guint8 *data,
                                    gsize         len);
guint8  *relais_sync_base64_decode (const char   *text,
                                    gsize         max_len,
                                    gsize        *out_len,
                                    GError      **error);

G_END_DECLS
