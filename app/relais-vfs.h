#pragma once

#include <glib.h>
#include <sqlite3.h>

G_BEGIN_DECLS

/* An SQLite VFS that encrypts every page of a database, of its WAL and of
 * its rollback journal with XChaCha20-Poly1305 (see README.md, "The vault").
 *
 * Each RelaisVfs is registered with SQLite under a unique name and carries
 * the keys of one database; open the database with that name as the VFS
 * argument of sqlite3_open_v2().  It sits over another VFS (the system's
 * default, or a fault-injecting one in tests). */

#define RELAIS_PAGE_SIZE      4096
#define RELAIS_RESERVE_BYTES  40    /* nonce (24) + tag (16) at the end of each page */
#define RELAIS_NONCE_BYTES    24
#define RELAIS_TAG_BYTES      16
#define RELAIS_DB_ID_BYTES    16
#define RELAIS_KEY_BYTES      32

typedef struct _RelaisVfs RelaisVfs;

/* Creates and registers a VFS over @base_vfs (NULL: SQLite's default).
 * @data_key is copied into guarded memory; the page and mask subkeys are
 * derived from it.  Returns NULL if @base_vfs does not exist. */
RelaisVfs  *relais_vfs_new                  (const char    *base_vfs,
                                             const guint8   db_id[RELAIS_DB_ID_BYTES],
                                             const guint8   data_key[RELAIS_KEY_BYTES]);
const char *relais_vfs_get_name             (RelaisVfs     *self);
/* Unregisters the VFS and wipes its keys.  Every connection using it must be
 * closed first. */
void        relais_vfs_free                 (RelaisVfs     *self);

/* WAL frames that failed authentication during recovery and were handed to
 * SQLite as invalid (a torn write after a crash, or tampering). */
guint       relais_vfs_get_rejected_frames  (RelaisVfs     *self);
/* Pages that failed authentication on a normal read (returned as
 * SQLITE_IOERR_DATA). */
guint       relais_vfs_get_damaged_pages    (RelaisVfs     *self);
/* Page number of the last page that failed authentication, or 0. */
guint32     relais_vfs_get_last_damaged_page (RelaisVfs    *self);

/* The page transform itself, exposed for known-answer tests.
 * @page is RELAIS_PAGE_SIZE bytes whose last RELAIS_RESERVE_BYTES are zero;
 * @out receives the on-disk form.  @nonce NULL draws a fresh random one. */
void        relais_page_encrypt             (const guint8  page_key[RELAIS_KEY_BYTES],
                                             const guint8  db_id[RELAIS_DB_ID_BYTES],
                                             guint32       pgno,
                                             const guint8 *nonce,
                                             const guint8 *page,
                                             guint8       *out);
/* Returns FALSE (and zeroes @out) when the page does not authenticate. */
G_GNUC_WARN_UNUSED_RESULT
gboolean    relais_page_decrypt             (const guint8  page_key[RELAIS_KEY_BYTES],
                                             const guint8  db_id[RELAIS_DB_ID_BYTES],
                                             guint32       pgno,
                                             const guint8 *disk,
                                             guint8       *out);
/* Derives the page key from the data key (crypto_kdf_derive_from_key). */
void        relais_vfs_derive_page_key      (const guint8  data_key[RELAIS_KEY_BYTES],
                                             guint8        page_key[RELAIS_KEY_BYTES]);

G_END_DECLS
