#define G_LOG_DOMAIN "relais-vfs"

#include "config.h"

#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "relais-vfs.h"

/*
 * Page-level encryption under SQLite.
 *
 * Every file SQLite writes for the vault keeps exactly the layout SQLite
 * gives it, so offsets and sizes pass through unchanged:
 *
 *  - database: page N at (N-1)*4096.  Its first 4056 bytes are encrypted
 *    with XChaCha20-Poly1305; the 40 reserved bytes (which SQLite leaves
 *    zero, because the database was created with 40 reserved bytes) carry
 *    the nonce and the tag.  Associated data: "RLS1", the database id, the
 *    page number.
 *  - WAL: the 32-byte header passes in clear (format, salts, no content).
 *    Each frame is a 24-byte header then a page image encrypted as above
 *    (page number from the frame header).  The frame header's page number,
 *    commit size and checksums are masked with a keyed hash of the frame's
 *    salt and offset: SQLite's checksums are computed over the plaintext
 *    page, so in clear they would be fingerprints of its content.
 *  - rollback journal: the header passes in clear; each record is the
 *    page number (clear), the page image (encrypted as above) and a
 *    checksum (masked with a keyed hash of the page image's nonce).
 *
 * What SQLite reads back must be exactly what it wrote: decrypted pages
 * are returned with their reserved bytes zeroed, as SQLite wrote them,
 * since WAL checksums cover them.  A frame that fails authentication while
 * SQLite recovers the WAL (it reads whole frames only then) is a torn write:
 * it is handed back with its salt spoiled, so that SQLite's own check
 * rejects it and recovery ends there, as it would for a bad checksum.  A
 * journal page that fails authentication during playback ends the playback
 * like a truncated journal would.  Anywhere else a page that fails
 * authentication is SQLITE_IOERR_DATA.
 *
 * Temporary files (temp databases, statement journals, sorter spills) are
 * refused: the vault sets temp_store=MEMORY, so SQLite never asks for one,
 * and refusing makes sure no plaintext could ever reach the disk if it did.
 */

#define WAL_HDR_SIZE       32
#define WAL_FRAME_HDR_SIZE 24
#define WAL_FRAME_SIZE     (WAL_FRAME_HDR_SIZE + RELAIS_PAGE_SIZE)
#define CONTENT_SIZE       (RELAIS_PAGE_SIZE - RELAIS_RESERVE_BYTES)
#define NONCE_OFFSET       CONTENT_SIZE
#define TAG_OFFSET         (CONTENT_SIZE + RELAIS_NONCE_BYTES)
#define AD_SIZE            (4 + RELAIS_DB_ID_BYTES + 4)
#define JOURNAL_SECTOR_MIN 512
/* At most 16 MiB of WAL plaintext kept per connection; beyond, frames are
 * decrypted when read back. */
#define WAL_CACHE_MAX_FRAMES 4096

#ifndef NEVER
# define NEVER(x) (x)
#endif

typedef enum {
  FILE_MAIN,
  FILE_WAL,
  FILE_JOURNAL,
} FileKind;

struct _RelaisVfs
{
  sqlite3_vfs   vfs;
  sqlite3_vfs  *under;
  char          name[32];
  guint8        db_id[RELAIS_DB_ID_BYTES];
  /* sodium_malloc: page key then mask key */
  guint8       *keys;
  gint          rejected_frames;
  gint          damaged_pages;
  guint         last_damaged_page;

  /* The page a checkpoint last read from the WAL: its plaintext and the
   * frame's ciphertext.  When SQLite then writes those same bytes to that
   * page of the database, the frame's ciphertext is valid there as it is
   * (same key, same page number, nonce and tag inside the page), so it is
   * written without encrypting again.  A nonce is thus used twice only
   * for the very same plaintext and associated data. */
  guint32       ck_pgno;
  guint8       *ck_plain;
  guint8       *ck_cipher;
};

typedef struct
{
  sqlite3_file   base;
  RelaisVfs     *owner;
  FileKind       kind;
  sqlite3_file  *real;
  guint8        *scratch;   /* WAL_FRAME_SIZE bytes */

  /* WAL: the plaintext of the frames this connection wrote since the WAL
   * last restarted, by frame index, so that a checkpoint need not decrypt
   * what it wrote itself.  A page number of 0 marks an empty slot. */
  guint32       *wc_pgno;
  guint8       **wc_plain;   /* plaintext, then the ciphertext as on disk */
  gsize          wc_len;

  /* Fresh random nonces, drawn from the system in batches: one system
   * call per page written cost about 5 % of a bulk insert. */
  guint8         nonces[64 * RELAIS_NONCE_BYTES];
  guint          nonces_left;
  pid_t          nonces_pid;

  /* WAL: the last frame header written, so that the page image that
   * follows it knows its page number without reading it back. */
  sqlite3_int64  wal_hdr_offset;
  guint32        wal_hdr_pgno;

  /* Journal: the last 4-byte write (the page number of the record that
   * follows), and the last page image written and read, whose nonce keys
   * the mask of the checksum that follows it. */
  sqlite3_int64  jrnl_pgno_end;
  guint32        jrnl_pgno;
  sqlite3_int64  jrnl_write_end;
  guint8         jrnl_write_nonce[RELAIS_NONCE_BYTES];
  sqlite3_int64  jrnl_read_end;
  guint8         jrnl_read_nonce[RELAIS_NONCE_BYTES];
} RelaisFile;

/* Our state, then the underlying VFS's file, aligned on 16 bytes. */
#define RELAIS_FILE_HEAD ((sizeof (RelaisFile) + 15) & ~(gsize) 15)

static const sqlite3_io_methods relais_io_methods;
static gint vfs_counter;

static inline const guint8 *
page_key (RelaisVfs *self)
{
  return self->keys;
}

static inline const guint8 *
mask_key (RelaisVfs *self)
{
  return self->keys + RELAIS_KEY_BYTES;
}

static inline guint32
get_be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}

static inline void
put_be32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static void
make_ad (guint8 ad[AD_SIZE], const guint8 db_id[RELAIS_DB_ID_BYTES], guint32 pgno)
{
  memcpy (ad, "RLS1", 4);
  memcpy (ad + 4, db_id, RELAIS_DB_ID_BYTES);
  put_be32 (ad + 4 + RELAIS_DB_ID_BYTES, pgno);
}

void
relais_vfs_derive_page_key (const guint8 data_key[RELAIS_KEY_BYTES],
                            guint8       out[RELAIS_KEY_BYTES])
{
  crypto_kdf_derive_from_key (out, RELAIS_KEY_BYTES, 1, "RelaisPg", data_key);
}

static void
derive_mask_key (const guint8 data_key[RELAIS_KEY_BYTES],
                 guint8       out[RELAIS_KEY_BYTES])
{
  crypto_kdf_derive_from_key (out, RELAIS_KEY_BYTES, 2, "RelaisMk", data_key);
}

void
relais_page_encrypt (const guint8  key[RELAIS_KEY_BYTES],
                     const guint8  db_id[RELAIS_DB_ID_BYTES],
                     guint32       pgno,
                     const guint8 *nonce,
                     const guint8 *page,
                     guint8       *out)
{
  guint8 ad[AD_SIZE];

  g_assert (page != out);

  make_ad (ad, db_id, pgno);
  if (nonce != NULL)
    memcpy (out + NONCE_OFFSET, nonce, RELAIS_NONCE_BYTES);
  else
    randombytes_buf (out + NONCE_OFFSET, RELAIS_NONCE_BYTES);

  crypto_aead_xchacha20poly1305_ietf_encrypt_detached (out, out + TAG_OFFSET, NULL,
                                                       page, CONTENT_SIZE,
                                                       ad, sizeof ad,
                                                       NULL, out + NONCE_OFFSET, key);
}

gboolean
relais_page_decrypt (const guint8  key[RELAIS_KEY_BYTES],
                     const guint8  db_id[RELAIS_DB_ID_BYTES],
                     guint32       pgno,
                     const guint8 *disk,
                     guint8       *out)
{
  guint8 ad[AD_SIZE];
  guint8 nonce[RELAIS_NONCE_BYTES];
  guint8 tag[RELAIS_TAG_BYTES];

  /* @out may be @disk: keep the nonce and tag before the plaintext
   * overwrites the bytes around them. */
  memcpy (nonce, disk + NONCE_OFFSET, sizeof nonce);
  memcpy (tag, disk + TAG_OFFSET, sizeof tag);
  make_ad (ad, db_id, pgno);

  if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached (out, NULL,
                                                           disk, CONTENT_SIZE,
                                                           tag, ad, sizeof ad,
                                                           nonce, key) != 0)
    {
      memset (out, 0, RELAIS_PAGE_SIZE);
      return FALSE;
    }

  /* SQLite wrote zeros there; its WAL checksums cover them. */
  memset (out + CONTENT_SIZE, 0, RELAIS_RESERVE_BYTES);
  return TRUE;
}

static gboolean
reserved_bytes_are_zero (const guint8 *page)
{
  static const guint8 zeros[RELAIS_RESERVE_BYTES];

  return memcmp (page + CONTENT_SIZE, zeros, RELAIS_RESERVE_BYTES) == 0;
}

static void
note_damaged_page (RelaisVfs *self,
                   guint32    pgno)
{
  g_atomic_int_inc (&self->damaged_pages);
  g_atomic_int_set ((gint *) &self->last_damaged_page, (gint) pgno);
  g_debug ("page %u failed authentication", pgno);
}

/* A fresh random nonce for the next page written through @f. */
static const guint8 *
next_nonce (RelaisFile *f)
{
  /* A forked child must never draw the parent's nonces again. */
  if (f->nonces_left == 0 || f->nonces_pid != getpid ())
    {
      randombytes_buf (f->nonces, sizeof f->nonces);
      f->nonces_left = sizeof f->nonces / RELAIS_NONCE_BYTES;
      f->nonces_pid = getpid ();
    }
  f->nonces_left--;
  return f->nonces + f->nonces_left * RELAIS_NONCE_BYTES;
}

/* Masks (or unmasks: it is an XOR) the page number, commit size and
 * checksums of a WAL frame header.  The salt (bytes 8–15) stays in clear:
 * it keys the mask and SQLite compares it with the WAL header's. */
/* The masks are SipHash-2-4 with 128-bit output (a PRF keyed by the first
 * half of the mask key): a quarter of the cost of keyed BLAKE2b, once per
 * frame written and read. */
G_STATIC_ASSERT (crypto_shorthash_siphashx24_BYTES == 16);
G_STATIC_ASSERT (crypto_shorthash_siphashx24_KEYBYTES <= RELAIS_KEY_BYTES);

static void
wal_mask_frame_header (RelaisVfs     *self,
                       guint8        *hdr,
                       sqlite3_int64  offset)
{
  guint8 in[4 + 8 + 8];
  guint8 mask[16];
  guint64 off = (guint64) offset;

  memcpy (in, "WALF", 4);
  memcpy (in + 4, hdr + 8, 8);
  for (guint i = 0; i < 8; i++)
    in[12 + i] = (guint8) (off >> (8 * i));
  crypto_shorthash_siphashx24 (mask, in, sizeof in, mask_key (self));

  for (guint i = 0; i < 8; i++)
    hdr[i] ^= mask[i];
  for (guint i = 0; i < 8; i++)
    hdr[16 + i] ^= mask[8 + i];
}

static void
journal_mask_checksum (RelaisVfs    *self,
                       guint8       *cksum,
                       const guint8  nonce[RELAIS_NONCE_BYTES])
{
  guint8 in[4 + RELAIS_NONCE_BYTES];
  guint8 mask[16];

  memcpy (in, "JRNC", 4);
  memcpy (in + 4, nonce, RELAIS_NONCE_BYTES);
  crypto_shorthash_siphashx24 (mask, in, sizeof in, mask_key (self));
  for (guint i = 0; i < 4; i++)
    cksum[i] ^= mask[i];
}

/* Main database */

static gboolean
is_all_zero (const guint8 *p,
             gsize         n)
{
  for (gsize i = 0; i < n; i++)
    if (p[i] != 0)
      return FALSE;
  return TRUE;
}

#define DB_HEADER_SIZE 100

/* The first 100 bytes of page 1 as SQLite writes them for a vault, with
 * every field that varies left at zero. */
static void
synthesize_header (guint8 *page)
{
  memset (page, 0, RELAIS_PAGE_SIZE);
  memcpy (page, "SQLite format 3", 16);
  page[16] = RELAIS_PAGE_SIZE >> 8;
  page[17] = RELAIS_PAGE_SIZE & 0xff;
  page[18] = 2;
  page[19] = 2;
  page[20] = RELAIS_RESERVE_BYTES;
  page[21] = 64;
  page[22] = 32;
  page[23] = 32;
}

static int
main_read (RelaisFile    *f,
           guint8        *out,
           int            amt,
           sqlite3_int64  offset)
{
  RelaisVfs *self = f->owner;
  sqlite3_int64 end = offset + amt;
  gboolean short_read = FALSE;

  /* Whole pages are decrypted in place; partial reads (SQLite reads 16 or
   * 100 bytes of page 1) decrypt the whole page into the scratch buffer. */
  for (sqlite3_int64 pos = offset; pos < end;)
    {
      sqlite3_int64 page_start = pos - pos % RELAIS_PAGE_SIZE;
      guint32 pgno = (guint32) (page_start / RELAIS_PAGE_SIZE) + 1;
      sqlite3_int64 chunk_end = MIN (end, page_start + RELAIS_PAGE_SIZE);
      gboolean whole = pos == page_start && chunk_end == page_start + RELAIS_PAGE_SIZE;
      guint8 *page = whole ? out + (pos - offset) : f->scratch;
      int rc;

      rc = f->real->pMethods->xRead (f->real, page, RELAIS_PAGE_SIZE, page_start);
      if (rc == SQLITE_IOERR_SHORT_READ)
        {
          /* Past the end of the file: SQLite expects zeros and the short
           * read code.  A page cut in the middle is damage. */
          if (!is_all_zero (page, RELAIS_PAGE_SIZE))
            {
              note_damaged_page (self, pgno);
              return SQLITE_IOERR_DATA;
            }
          memset (out + (pos - offset), 0, chunk_end - pos);
          short_read = TRUE;
          pos = chunk_end;
          continue;
        }
      if (rc != SQLITE_OK)
        return rc;

      if (!relais_page_decrypt (page_key (self), self->db_id, pgno, page, page))
        {
          if (pgno == 1 && !whole && end <= DB_HEADER_SIZE)
            {
              /* SQLite reads the header straight from the database file
               * when it opens it, before it looks at the WAL.  A checkpoint
               * cut by a power loss can leave page 1 torn there while the
               * WAL still holds its good copy, which SQLite will read next:
               * answer with the header every vault has (page size, reserved
               * bytes), which tells nothing of the content. */
              g_debug ("header of page 1 does not authenticate; answering with the vault's constants");
              synthesize_header (page);
              memcpy (out + (pos - offset), page + (pos - page_start), chunk_end - pos);
              pos = chunk_end;
              continue;
            }
          note_damaged_page (self, pgno);
          return SQLITE_IOERR_DATA;
        }
      if (!whole)
        memcpy (out + (pos - offset), page + (pos - page_start), chunk_end - pos);
      pos = chunk_end;
    }

  return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int
main_write (RelaisFile    *f,
            const guint8  *in,
            int            amt,
            sqlite3_int64  offset)
{
  RelaisVfs *self = f->owner;
  guint32 pgno;

  /* SQLite writes the database in whole pages only; anything else would
   * mean the page size is not the vault's, and must not reach the disk. */
  if (NEVER (amt != RELAIS_PAGE_SIZE || offset % RELAIS_PAGE_SIZE != 0))
    {
      g_warning ("refusing a database write of %d bytes at %" G_GINT64_FORMAT, amt, (gint64) offset);
      return SQLITE_IOERR_WRITE;
    }
  /* The nonce and tag go where SQLite reserved room; if it ever put
   * something there, storing the page would lose it. */
  if (NEVER (!reserved_bytes_are_zero (in)))
    {
      g_warning ("refusing a page whose reserved bytes are in use");
      return SQLITE_IOERR_WRITE;
    }

  pgno = (guint32) (offset / RELAIS_PAGE_SIZE) + 1;
  if (self->ck_pgno == pgno && memcmp (in, self->ck_plain, RELAIS_PAGE_SIZE) == 0)
    {
      self->ck_pgno = 0;
      return f->real->pMethods->xWrite (f->real, self->ck_cipher, RELAIS_PAGE_SIZE, offset);
    }

  relais_page_encrypt (page_key (self), self->db_id, pgno, next_nonce (f), in, f->scratch);
  return f->real->pMethods->xWrite (f->real, f->scratch, RELAIS_PAGE_SIZE, offset);
}

/* WAL */

static inline sqlite3_int64
wal_frame_pos (sqlite3_int64 offset)
{
  return (offset - WAL_HDR_SIZE) % WAL_FRAME_SIZE;
}

static void
wal_cache_clear (RelaisFile *f)
{
  if (f->wc_pgno != NULL)
    memset (f->wc_pgno, 0, f->wc_len * sizeof (guint32));
}

static void
wal_cache_free (RelaisFile *f)
{
  for (gsize i = 0; i < f->wc_len; i++)
    if (f->wc_plain[i] != NULL)
      {
        sodium_memzero (f->wc_plain[i], RELAIS_PAGE_SIZE);
        g_free (f->wc_plain[i]);
      }
  sodium_memzero (f->nonces, sizeof f->nonces);
  g_clear_pointer (&f->wc_plain, g_free);
  g_clear_pointer (&f->wc_pgno, g_free);
  f->wc_len = 0;
}

static void
wal_cache_store (RelaisFile    *f,
                 sqlite3_int64  frame,
                 guint32        pgno,
                 const guint8  *plain,
                 const guint8  *cipher)
{
  gsize idx = (gsize) ((frame - WAL_HDR_SIZE) / WAL_FRAME_SIZE);

  if (idx >= WAL_CACHE_MAX_FRAMES)
    return;
  if (idx >= f->wc_len)
    {
      gsize n = MIN (WAL_CACHE_MAX_FRAMES, MAX (idx + 1, f->wc_len * 2));

      f->wc_pgno = g_renew (guint32, f->wc_pgno, n);
      f->wc_plain = g_renew (guint8 *, f->wc_plain, n);
      memset (f->wc_pgno + f->wc_len, 0, (n - f->wc_len) * sizeof (guint32));
      memset (f->wc_plain + f->wc_len, 0, (n - f->wc_len) * sizeof (guint8 *));
      f->wc_len = n;
    }
  if (f->wc_plain[idx] == NULL)
    f->wc_plain[idx] = g_malloc (RELAIS_PAGE_SIZE);
  memcpy (f->wc_plain[idx], plain, RELAIS_PAGE_SIZE);
  f->wc_pgno[idx] = pgno;
}

static int
wal_read (RelaisFile    *f,
          guint8        *out,
          int            amt,
          sqlite3_int64  offset)
{
  RelaisVfs *self = f->owner;
  int rc;

  if (offset + amt <= WAL_HDR_SIZE)
    return f->real->pMethods->xRead (f->real, out, amt, offset);

  if (offset >= WAL_HDR_SIZE && wal_frame_pos (offset) == 0 && amt == WAL_FRAME_SIZE)
    {
      /* A whole frame: SQLite is recovering the WAL (or rewriting the
       * checksums of the frames of the current transaction). */
      guint8 *page = out + WAL_FRAME_HDR_SIZE;

      rc = f->real->pMethods->xRead (f->real, out, amt, offset);
      if (rc != SQLITE_OK)
        return rc;
      wal_mask_frame_header (self, out, offset);
      if (!relais_page_decrypt (page_key (self), self->db_id, get_be32 (out), page, page))
        {
          /* A torn write, or tampering: let SQLite's salt check reject the
           * frame, which ends recovery at the last good commit. */
          out[8] ^= 0xff;
          g_atomic_int_inc (&self->rejected_frames);
          g_debug ("WAL frame at %" G_GINT64_FORMAT " rejected", (gint64) offset);
        }
      return SQLITE_OK;
    }

  if (offset >= WAL_HDR_SIZE && wal_frame_pos (offset) + amt <= WAL_FRAME_HDR_SIZE)
    {
      /* All or part of a frame header: SQLite reads the checksums of the
       * frame before the first one it rewrites (walRewriteChecksums). */
      sqlite3_int64 frame = offset - wal_frame_pos (offset);
      guint8 hdr[WAL_FRAME_HDR_SIZE];

      rc = f->real->pMethods->xRead (f->real, hdr, sizeof hdr, frame);
      if (rc == SQLITE_OK)
        wal_mask_frame_header (self, hdr, frame);
      memcpy (out, hdr + (offset - frame), amt);
      return rc;
    }

  if (offset >= WAL_HDR_SIZE && wal_frame_pos (offset) == WAL_FRAME_HDR_SIZE && amt == RELAIS_PAGE_SIZE)
    {
      /* A page image read on its own (a normal read, or a checkpoint): its
       * header, read along with it, gives the page number. */
      sqlite3_int64 frame = offset - WAL_FRAME_HDR_SIZE;
      gsize idx = (gsize) ((frame - WAL_HDR_SIZE) / WAL_FRAME_SIZE);
      guint32 pgno;

      if (idx < f->wc_len && f->wc_pgno[idx] != 0)
        {
          /* A frame this connection wrote: its plaintext is at hand. */
          rc = f->real->pMethods->xRead (f->real, self->ck_cipher, RELAIS_PAGE_SIZE, offset);
          if (rc != SQLITE_OK)
            return rc;
          memcpy (out, f->wc_plain[idx], RELAIS_PAGE_SIZE);
          memcpy (self->ck_plain, out, RELAIS_PAGE_SIZE);
          self->ck_pgno = f->wc_pgno[idx];
          return SQLITE_OK;
        }

      rc = f->real->pMethods->xRead (f->real, f->scratch, WAL_FRAME_SIZE, frame);
      if (rc != SQLITE_OK)
        return rc;
      wal_mask_frame_header (self, f->scratch, frame);
      pgno = get_be32 (f->scratch);
      if (!relais_page_decrypt (page_key (self), self->db_id, pgno,
                                f->scratch + WAL_FRAME_HDR_SIZE, out))
        {
          note_damaged_page (self, pgno);
          return SQLITE_IOERR_DATA;
        }
      memcpy (self->ck_cipher, f->scratch + WAL_FRAME_HDR_SIZE, RELAIS_PAGE_SIZE);
      memcpy (self->ck_plain, out, RELAIS_PAGE_SIZE);
      self->ck_pgno = pgno;
      return SQLITE_OK;
    }

  g_warning ("unexpected WAL read of %d bytes at %" G_GINT64_FORMAT, amt, (gint64) offset);
  return SQLITE_IOERR_READ;
}

static int
wal_write (RelaisFile    *f,
           const guint8  *in,
           int            amt,
           sqlite3_int64  offset)
{
  RelaisVfs *self = f->owner;
  guint8 hdr[WAL_FRAME_HDR_SIZE];
  int rc;

  if (offset + amt <= WAL_HDR_SIZE)
    {
      /* A new WAL header: the WAL restarts, every frame is stale. */
      wal_cache_clear (f);
      return f->real->pMethods->xWrite (f->real, in, amt, offset);
    }

  if (offset >= WAL_HDR_SIZE && wal_frame_pos (offset) == 0 && amt == WAL_FRAME_HDR_SIZE)
    {
      memcpy (hdr, in, sizeof hdr);
      f->wal_hdr_offset = offset;
      f->wal_hdr_pgno = get_be32 (hdr);
      wal_mask_frame_header (self, hdr, offset);
      return f->real->pMethods->xWrite (f->real, hdr, sizeof hdr, offset);
    }

  if (offset >= WAL_HDR_SIZE && wal_frame_pos (offset) == WAL_FRAME_HDR_SIZE && amt == RELAIS_PAGE_SIZE)
    {
      sqlite3_int64 frame = offset - WAL_FRAME_HDR_SIZE;
      guint32 pgno;

      if (NEVER (!reserved_bytes_are_zero (in)))
        return SQLITE_IOERR_WRITE;

      if (f->wal_hdr_offset == frame)
        pgno = f->wal_hdr_pgno;
      else
        {
          /* SQLite overwrites the page of a frame of the current
           * transaction without rewriting its header. */
          rc = f->real->pMethods->xRead (f->real, hdr, sizeof hdr, frame);
          if (rc != SQLITE_OK)
            return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_IOERR_WRITE : rc;
          wal_mask_frame_header (self, hdr, frame);
          pgno = get_be32 (hdr);
        }
      relais_page_encrypt (page_key (self), self->db_id, pgno, next_nonce (f), in, f->scratch);
      rc = f->real->pMethods->xWrite (f->real, f->scratch, RELAIS_PAGE_SIZE, offset);
      if (rc == SQLITE_OK)
        wal_cache_store (f, frame, pgno, in, f->scratch);
      else
        wal_cache_clear (f);
      return rc;
    }

  g_warning ("unexpected WAL write of %d bytes at %" G_GINT64_FORMAT, amt, (gint64) offset);
  return SQLITE_IOERR_WRITE;
}

/* Rollback journal */

static gboolean
journal_is_page_image (int           amt,
                       sqlite3_int64 offset)
{
  /* Journal headers start on sector boundaries (at least 512 bytes) and
   * may be written in page-sized pieces; page images never start on one,
   * since each follows its 4-byte page number. */
  return amt == RELAIS_PAGE_SIZE && offset % JOURNAL_SECTOR_MIN != 0;
}

static int
journal_read (RelaisFile    *f,
              guint8        *out,
              int            amt,
              sqlite3_int64  offset)
{
  RelaisVfs *self = f->owner;
  int rc;

  if (journal_is_page_image (amt, offset))
    {
      guint8 pgno_buf[4];
      guint32 pgno;

      rc = f->real->pMethods->xRead (f->real, pgno_buf, 4, offset - 4);
      if (rc != SQLITE_OK)
        return rc;
      pgno = get_be32 (pgno_buf);
      rc = f->real->pMethods->xRead (f->real, out, amt, offset);
      if (rc != SQLITE_OK)
        return rc;
      memcpy (f->jrnl_read_nonce, out + NONCE_OFFSET, RELAIS_NONCE_BYTES);
      if (!relais_page_decrypt (page_key (self), self->db_id, pgno, out, out))
        {
          /* A torn record: playback stops here, as for a journal cut short. */
          g_atomic_int_inc (&self->rejected_frames);
          f->jrnl_read_end = -1;
          return SQLITE_IOERR_SHORT_READ;
        }
      f->jrnl_read_end = offset + amt;
      return SQLITE_OK;
    }

  rc = f->real->pMethods->xRead (f->real, out, amt, offset);
  if (rc == SQLITE_OK && amt == 4 && offset == f->jrnl_read_end)
    journal_mask_checksum (self, out, f->jrnl_read_nonce);
  return rc;
}

static int
journal_write (RelaisFile    *f,
               const guint8  *in,
               int            amt,
               sqlite3_int64  offset)
{
  RelaisVfs *self = f->owner;
  int rc;

  if (journal_is_page_image (amt, offset))
    {
      guint32 pgno;

      if (NEVER (!reserved_bytes_are_zero (in)))
        return SQLITE_IOERR_WRITE;

      if (f->jrnl_pgno_end == offset)
        pgno = f->jrnl_pgno;
      else
        {
          guint8 pgno_buf[4];

          rc = f->real->pMethods->xRead (f->real, pgno_buf, 4, offset - 4);
          if (rc != SQLITE_OK)
            return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_IOERR_WRITE : rc;
          pgno = get_be32 (pgno_buf);
        }
      relais_page_encrypt (page_key (self), self->db_id, pgno, next_nonce (f), in, f->scratch);
      rc = f->real->pMethods->xWrite (f->real, f->scratch, amt, offset);
      if (rc == SQLITE_OK)
        {
          memcpy (f->jrnl_write_nonce, f->scratch + NONCE_OFFSET, RELAIS_NONCE_BYTES);
          f->jrnl_write_end = offset + amt;
        }
      return rc;
    }

  if (amt == 4 && offset == f->jrnl_write_end)
    {
      guint8 cksum[4];

      memcpy (cksum, in, 4);
      journal_mask_checksum (self, cksum, f->jrnl_write_nonce);
      f->jrnl_write_end = -1;
      return f->real->pMethods->xWrite (f->real, cksum, 4, offset);
    }

  if (amt == 4)
    {
      f->jrnl_pgno_end = offset + 4;
      f->jrnl_pgno = get_be32 (in);
    }
  return f->real->pMethods->xWrite (f->real, in, amt, offset);
}

/* sqlite3_io_methods */

static int
relais_file_close (sqlite3_file *file)
{
  RelaisFile *f = (RelaisFile *) file;
  int rc = f->real->pMethods ? f->real->pMethods->xClose (f->real) : SQLITE_OK;

  if (f->scratch != NULL)
    sodium_memzero (f->scratch, WAL_FRAME_SIZE);
  g_clear_pointer (&f->scratch, g_free);
  wal_cache_free (f);
  f->owner->ck_pgno = 0;
  return rc;
}

static int
relais_file_read (sqlite3_file  *file,
                  void          *buf,
                  int            amt,
                  sqlite3_int64  offset)
{
  RelaisFile *f = (RelaisFile *) file;

  switch (f->kind)
    {
    case FILE_MAIN:
      return main_read (f, buf, amt, offset);
    case FILE_WAL:
      return wal_read (f, buf, amt, offset);
    case FILE_JOURNAL:
      return journal_read (f, buf, amt, offset);
    default:
      g_assert_not_reached ();
    }
}

static int
relais_file_write (sqlite3_file  *file,
                   const void    *buf,
                   int            amt,
                   sqlite3_int64  offset)
{
  RelaisFile *f = (RelaisFile *) file;

  switch (f->kind)
    {
    case FILE_MAIN:
      return main_write (f, buf, amt, offset);
    case FILE_WAL:
      return wal_write (f, buf, amt, offset);
    case FILE_JOURNAL:
      return journal_write (f, buf, amt, offset);
    default:
      g_assert_not_reached ();
    }
}

static int
relais_file_truncate (sqlite3_file  *file,
                      sqlite3_int64  size)
{
  RelaisFile *f = (RelaisFile *) file;

  f->jrnl_write_end = f->jrnl_read_end = f->jrnl_pgno_end = -1;
  f->wal_hdr_offset = -1;
  wal_cache_clear (f);
  f->owner->ck_pgno = 0;
  return f->real->pMethods->xTruncate (f->real, size);
}

static int
relais_file_sync (sqlite3_file *file,
                  int           flags)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xSync (f->real, flags);
}

static int
relais_file_size (sqlite3_file  *file,
                  sqlite3_int64 *size)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xFileSize (f->real, size);
}

static int
relais_file_lock (sqlite3_file *file,
                  int           lock)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xLock (f->real, lock);
}

static int
relais_file_unlock (sqlite3_file *file,
                    int           lock)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xUnlock (f->real, lock);
}

static int
relais_file_check_reserved_lock (sqlite3_file *file,
                                 int          *out)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xCheckReservedLock (f->real, out);
}

static int
relais_file_control (sqlite3_file *file,
                     int           op,
                     void         *arg)
{
  RelaisFile *f = (RelaisFile *) file;
  int rc;

  switch (op)
    {
    case SQLITE_FCNTL_MMAP_SIZE:
      /* Memory-mapped reads would bypass decryption. */
      *(sqlite3_int64 *) arg = 0;
      return SQLITE_OK;

    case SQLITE_FCNTL_VFSNAME:
      rc = f->real->pMethods->xFileControl (f->real, op, arg);
      if (rc == SQLITE_OK)
        {
          char *under = *(char **) arg;
          *(char **) arg = sqlite3_mprintf ("relais/%z", under);
        }
      return rc;

    default:
      return f->real->pMethods->xFileControl (f->real, op, arg);
    }
}

static int
relais_file_sector_size (sqlite3_file *file)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xSectorSize (f->real);
}

static int
relais_file_device_characteristics (sqlite3_file *file)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xDeviceCharacteristics (f->real);
}

static int
relais_file_shm_map (sqlite3_file  *file,
                     int            region,
                     int            size,
                     int            extend,
                     void volatile **out)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xShmMap (f->real, region, size, extend, out);
}

static int
relais_file_shm_lock (sqlite3_file *file,
                      int           offset,
                      int           n,
                      int           flags)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xShmLock (f->real, offset, n, flags);
}

static void
relais_file_shm_barrier (sqlite3_file *file)
{
  RelaisFile *f = (RelaisFile *) file;

  f->real->pMethods->xShmBarrier (f->real);
}

static int
relais_file_shm_unmap (sqlite3_file *file,
                       int           delete_flag)
{
  RelaisFile *f = (RelaisFile *) file;

  return f->real->pMethods->xShmUnmap (f->real, delete_flag);
}

static int
relais_file_fetch (sqlite3_file   *file,
                   sqlite3_int64   offset,
                   int             amt,
                   void          **out)
{
  /* No memory-mapped I/O: every page goes through xRead. */
  *out = NULL;
  return SQLITE_OK;
}

static int
relais_file_unfetch (sqlite3_file  *file,
                     sqlite3_int64  offset,
                     void          *p)
{
  return SQLITE_OK;
}

static const sqlite3_io_methods relais_io_methods = {
  3,
  relais_file_close,
  relais_file_read,
  relais_file_write,
  relais_file_truncate,
  relais_file_sync,
  relais_file_size,
  relais_file_lock,
  relais_file_unlock,
  relais_file_check_reserved_lock,
  relais_file_control,
  relais_file_sector_size,
  relais_file_device_characteristics,
  relais_file_shm_map,
  relais_file_shm_lock,
  relais_file_shm_barrier,
  relais_file_shm_unmap,
  relais_file_fetch,
  relais_file_unfetch,
};

/* sqlite3_vfs */

static int
relais_vfs_open (sqlite3_vfs  *vfs,
                 const char   *name,
                 sqlite3_file *file,
                 int           flags,
                 int          *out_flags)
{
  RelaisVfs *self = vfs->pAppData;
  RelaisFile *f = (RelaisFile *) file;
  int rc;

  memset (f, 0, sizeof *f);

  if (flags & SQLITE_OPEN_MAIN_DB)
    f->kind = FILE_MAIN;
  else if (flags & SQLITE_OPEN_WAL)
    f->kind = FILE_WAL;
  else if (flags & SQLITE_OPEN_MAIN_JOURNAL)
    f->kind = FILE_JOURNAL;
  else
    {
      /* Temporary files, statement journals, super-journals: never on the
       * disk of a vault (temp_store=MEMORY, one database per connection). */
      g_warning ("refusing to open a temporary file (flags 0x%x)", flags);
      return SQLITE_CANTOPEN;
    }

  f->real = (sqlite3_file *) ((guint8 *) f + RELAIS_FILE_HEAD);
  f->owner = self;
  f->wal_hdr_offset = -1;
  f->jrnl_pgno_end = f->jrnl_write_end = f->jrnl_read_end = -1;

  rc = self->under->xOpen (self->under, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK)
    {
      f->base.pMethods = NULL;
      return rc;
    }

  f->scratch = g_malloc (WAL_FRAME_SIZE);
  f->base.pMethods = &relais_io_methods;
  return SQLITE_OK;
}

static int
relais_vfs_delete (sqlite3_vfs *vfs,
                   const char  *name,
                   int          sync_dir)
{
  RelaisVfs *self = vfs->pAppData;

  return self->under->xDelete (self->under, name, sync_dir);
}

static int
relais_vfs_access (sqlite3_vfs *vfs,
                   const char  *name,
                   int          flags,
                   int         *out)
{
  RelaisVfs *self = vfs->pAppData;

  return self->under->xAccess (self->under, name, flags, out);
}

static int
relais_vfs_full_pathname (sqlite3_vfs *vfs,
                          const char  *name,
                          int          n,
                          char        *out)
{
  RelaisVfs *self = vfs->pAppData;

  return self->under->xFullPathname (self->under, name, n, out);
}

static void *
relais_vfs_dl_open (sqlite3_vfs *vfs,
                    const char  *path)
{
  /* No loadable extensions in the vault's process. */
  return NULL;
}

static void
relais_vfs_dl_error (sqlite3_vfs *vfs,
                     int          n,
                     char        *out)
{
  g_strlcpy (out, "extensions are disabled", n);
}

static void (*relais_vfs_dl_sym (sqlite3_vfs *vfs,
                                 void        *handle,
                                 const char  *symbol)) (void)
{
  return NULL;
}

static void
relais_vfs_dl_close (sqlite3_vfs *vfs,
                     void        *handle)
{
}

static int
relais_vfs_randomness (sqlite3_vfs *vfs,
                       int          n,
                       char        *out)
{
  randombytes_buf (out, n);
  return n;
}

static int
relais_vfs_sleep (sqlite3_vfs *vfs,
                  int          microseconds)
{
  RelaisVfs *self = vfs->pAppData;

  return self->under->xSleep (self->under, microseconds);
}

static int
relais_vfs_current_time (sqlite3_vfs *vfs,
                         double      *out)
{
  RelaisVfs *self = vfs->pAppData;

  return self->under->xCurrentTime (self->under, out);
}

static int
relais_vfs_get_last_error (sqlite3_vfs *vfs,
                           int          n,
                           char        *out)
{
  RelaisVfs *self = vfs->pAppData;

  return self->under->xGetLastError ? self->under->xGetLastError (self->under, n, out) : 0;
}

static int
relais_vfs_current_time_int64 (sqlite3_vfs   *vfs,
                               sqlite3_int64 *out)
{
  RelaisVfs *self = vfs->pAppData;

  if (self->under->iVersion >= 2 && self->under->xCurrentTimeInt64 != NULL)
    return self->under->xCurrentTimeInt64 (self->under, out);

  {
    double now;
    int rc = self->under->xCurrentTime (self->under, &now);
    *out = (sqlite3_int64) (now * 86400000.0);
    return rc;
  }
}

RelaisVfs *
relais_vfs_new (const char   *base_vfs,
                const guint8  db_id[RELAIS_DB_ID_BYTES],
                const guint8  data_key[RELAIS_KEY_BYTES])
{
  RelaisVfs *self;
  sqlite3_vfs *under;
  gsize file_size;

  g_return_val_if_fail (db_id != NULL, NULL);
  g_return_val_if_fail (data_key != NULL, NULL);

  if (sodium_init () < 0)
    return NULL;

  under = sqlite3_vfs_find (base_vfs);
  if (under == NULL)
    return NULL;

  self = g_new0 (RelaisVfs, 1);
  self->under = under;
  memcpy (self->db_id, db_id, RELAIS_DB_ID_BYTES);
  self->keys = sodium_malloc (2 * RELAIS_KEY_BYTES);
  g_assert (self->keys != NULL);
  relais_vfs_derive_page_key (data_key, self->keys);
  derive_mask_key (data_key, self->keys + RELAIS_KEY_BYTES);
  sodium_mprotect_readonly (self->keys);
  self->ck_plain = g_malloc (RELAIS_PAGE_SIZE);
  self->ck_cipher = g_malloc (RELAIS_PAGE_SIZE);

  g_snprintf (self->name, sizeof self->name, "relais-%d", g_atomic_int_add (&vfs_counter, 1));

  file_size = RELAIS_FILE_HEAD + under->szOsFile;

  self->vfs.iVersion = 2;
  self->vfs.szOsFile = (int) file_size;
  self->vfs.mxPathname = under->mxPathname;
  self->vfs.zName = self->name;
  self->vfs.pAppData = self;
  self->vfs.xOpen = relais_vfs_open;
  self->vfs.xDelete = relais_vfs_delete;
  self->vfs.xAccess = relais_vfs_access;
  self->vfs.xFullPathname = relais_vfs_full_pathname;
  self->vfs.xDlOpen = relais_vfs_dl_open;
  self->vfs.xDlError = relais_vfs_dl_error;
  self->vfs.xDlSym = relais_vfs_dl_sym;
  self->vfs.xDlClose = relais_vfs_dl_close;
  self->vfs.xRandomness = relais_vfs_randomness;
  self->vfs.xSleep = relais_vfs_sleep;
  self->vfs.xCurrentTime = relais_vfs_current_time;
  self->vfs.xGetLastError = relais_vfs_get_last_error;
  self->vfs.xCurrentTimeInt64 = relais_vfs_current_time_int64;

  if (sqlite3_vfs_register (&self->vfs, 0) != SQLITE_OK)
    {
      relais_vfs_free (self);
      return NULL;
    }

  return self;
}

const char *
relais_vfs_get_name (RelaisVfs *self)
{
  g_return_val_if_fail (self != NULL, NULL);

  return self->name;
}

void
relais_vfs_free (RelaisVfs *self)
{
  if (self == NULL)
    return;

  sqlite3_vfs_unregister (&self->vfs);
  sodium_free (self->keys);
  if (self->ck_plain != NULL)
    sodium_memzero (self->ck_plain, RELAIS_PAGE_SIZE);
  g_free (self->ck_plain);
  g_free (self->ck_cipher);
  sodium_memzero (self->db_id, sizeof self->db_id);
  g_free (self);
}

guint
relais_vfs_get_rejected_frames (RelaisVfs *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return (guint) g_atomic_int_get (&self->rejected_frames);
}

guint
relais_vfs_get_damaged_pages (RelaisVfs *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return (guint) g_atomic_int_get (&self->damaged_pages);
}

guint32
relais_vfs_get_last_damaged_page (RelaisVfs *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return (guint32) g_atomic_int_get ((gint *) &self->last_damaged_page);
}
