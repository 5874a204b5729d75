#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <string.h>

#include "crashvfs.h"

/*
 * How the power loss is modelled.
 *
 * Every write and truncation goes to the disk at once (through the VFS
 * below), so the connection reads back what it wrote, as it would from the
 * page cache.  Until the file is synced, the change is also logged with what
 * it replaced.  At the crash, the log of each file is walked newest first;
 * each change is kept (with odds drawn for each file at each crash),
 * dropped or torn:
 *
 *  - kept: its bytes are pinned, so that older changes being dropped cannot
 *    bring back bytes that were overwritten by a change that did reach the
 *    platter;
 *  - dropped: its pre-image comes back, except over pinned bytes;
 *  - torn: each 512-byte sector it touches is kept or dropped on its own.
 *
 * The file ends with the size left by its newest change that was kept (or
 * torn), or with the size it had at the last sync if none was.  Bytes a
 * dropped write had appended and that stay inside the file read as zeros,
 * like a hole.  A change is only ever undone within its own range: like the
 * unix VFS, this assumes powersafe overwrite.
 */

#define SECTOR_SIZE 512

typedef struct {
  gint64   offset;
  gint64   len;       /* bytes of pre-image */
  guint8  *old;       /* what was there; zeros past the old end of file */
  gint64   old_size;
  gint64   new_size;
} Change;

typedef struct {
  char      *path;
  int        open_flags;
  GArray    *changes;  /* of Change, oldest first */
} FileLog;

typedef struct {
  gint64 start;
  gint64 end;
} Range;

typedef struct {
  sqlite3_file   base;
  sqlite3_file  *real;
  char          *path;      /* NULL for a temporary file */
  int            flags;
} CrashFile;

#define CRASH_FILE_HEAD ((sizeof (CrashFile) + 15) & ~(gsize) 15)

static struct {
  sqlite3_vfs         vfs;
  sqlite3_vfs        *under;
  gboolean            registered;

  GHashTable         *logs;        /* path → FileLog */
  GRand              *rand;

  guint               sync_count;
  guint               crash_at;    /* absolute sync number, 0: disarmed */
  gboolean            crashed;
  CrashvfsCrashStats  stats;

  CrashvfsOps         fail_ops;
  gboolean            fail_full;
  guint               op_count;
  guint               fail_at;
  gboolean            fail_persistent;
  guint               failures;

  gint64              budget;      /* < 0: none */
  gint64              grown;
} crash = { .budget = -1, .fail_ops = CRASHVFS_OP_ALL };

static void
change_clear (gpointer data)
{
  Change *c = data;

  g_clear_pointer (&c->old, g_free);
}

static void
file_log_free (gpointer data)
{
  FileLog *log = data;

  g_free (log->path);
  g_array_unref (log->changes);
  g_free (log);
}

static FileLog *
file_log_get (const char *path,
              int         open_flags)
{
  FileLog *log = g_hash_table_lookup (crash.logs, path);

  if (log == NULL)
    {
      log = g_new0 (FileLog, 1);
      log->path = g_strdup (path);
      log->open_flags = open_flags;
      log->changes = g_array_new (FALSE, FALSE, sizeof (Change));
      g_array_set_clear_func (log->changes, change_clear);
      g_hash_table_insert (crash.logs, log->path, log);
    }
  return log;
}

/* Whether the next counted operation of kind @op fails. */
static gboolean
inject_failure (CrashvfsOps op)
{
  if ((crash.fail_ops & op) == 0)
    return FALSE;

  crash.op_count++;
  if (crash.fail_at == 0)
    return FALSE;
  if (crash.op_count == crash.fail_at ||
      (crash.fail_persistent && crash.op_count > crash.fail_at))
    {
      crash.failures++;
      return TRUE;
    }
  return FALSE;
}

static int
real_size (sqlite3_file *real,
           gint64       *size)
{
  sqlite3_int64 s = 0;
  int rc = real->pMethods->xFileSize (real, &s);

  *size = s;
  return rc;
}

/* Reads [offset, offset + len) as it is now, zeros past the end. */
static int
read_pre_image (sqlite3_file *real,
                gint64        offset,
                gint64        len,
                gint64        size,
                guint8       *out)
{
  memset (out, 0, len);
  if (offset < size)
    {
      int n = (int) MIN (len, size - offset);
      int rc = real->pMethods->xRead (real, out, n, offset);

      if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
        return rc;
    }
  return SQLITE_OK;
}

/* Crash */

static gboolean
range_pinned (GArray *pinned,
              gint64  pos,
              gint64 *run_end)
{
  gint64 next_start = G_MAXINT64;

  /* Returns whether @pos is pinned and, in @run_end, where that answer
   * stops being true. */
  for (guint i = 0; i < pinned->len; i++)
    {
      Range *r = &g_array_index (pinned, Range, i);

      if (r->start <= pos && pos < r->end)
        {
          gint64 end = r->end;
          gboolean extended = TRUE;

          /* Merge pinned ranges that touch, so the run is maximal. */
          while (extended)
            {
              extended = FALSE;
              for (guint j = 0; j < pinned->len; j++)
                {
                  Range *o = &g_array_index (pinned, Range, j);
                  if (o->start <= end && end < o->end)
                    {
                      end = o->end;
                      extended = TRUE;
                    }
                }
            }
          *run_end = end;
          return TRUE;
        }
      if (r->start > pos && r->start < next_start)
        next_start = r->start;
    }
  *run_end = next_start;
  return FALSE;
}

/* Puts the pre-image of @c back over [start, end), except on pinned bytes. */
static void
restore_range (sqlite3_file *real,
               const Change *c,
               gint64        start,
               gint64        end,
               GArray       *pinned)
{
  gint64 pos = start;

  while (pos < end)
    {
      gint64 run_end;
      gboolean is_pinned = range_pinned (pinned, pos, &run_end);

      run_end = MIN (run_end, end);
      if (!is_pinned)
        {
          int rc = real->pMethods->xWrite (real, c->old + (pos - c->offset),
                                           (int) (run_end - pos), pos);
          if (rc != SQLITE_OK)
            g_error ("crashvfs: could not restore a pre-image (%d)", rc);
        }
      pos = run_end;
    }
}

static void
pin (GArray *pinned,
     gint64  start,
     gint64  end)
{
  Range r = { start, end };

  if (start < end)
    g_array_append_val (pinned, r);
}

static void
crash_file (FileLog *log)
{
  sqlite3_file *real = g_malloc0 (crash.under->szOsFile);
  g_autoptr(GArray) pinned = g_array_new (FALSE, FALSE, sizeof (Range));
  int open_flags;
  gint64 final_size = -1;
  gint64 size_now;
  double keep_odds;
  int rc;

  open_flags = (log->open_flags & ~(SQLITE_OPEN_CREATE | SQLITE_OPEN_EXCLUSIVE |
                                    SQLITE_OPEN_DELETEONCLOSE | SQLITE_OPEN_READONLY)) |
               SQLITE_OPEN_READWRITE;
  rc = crash.under->xOpen (crash.under, log->path, real, open_flags, NULL);
  if (rc != SQLITE_OK)
    g_error ("crashvfs: could not reopen %s to crash it (%d)", log->path, rc);

  /* How much of this file's unsynced data made it out before the power
   * failed varies from crash to crash: from almost nothing to almost
   * everything, so that whole transactions sometimes survive too. */
  keep_odds = g_rand_double (crash.rand);
  crash.stats.files++;
  g_debug ("crashvfs: crashing %s: %u unsynced changes, %.0f%% kept",
           log->path, log->changes->len, 100 * keep_odds);

  for (guint i = log->changes->len; i-- > 0;)
    {
      Change *c = &g_array_index (log->changes, Change, i);
      gint64 end = c->offset + c->len;
      int fate = g_rand_double (crash.rand) < keep_odds ? 0 : g_rand_int_range (crash.rand, 1, 3);

      switch (fate)
        {
        case 0:
          crash.stats.kept++;
          pin (pinned, c->offset, end);
          if (final_size < 0)
            final_size = c->new_size;
          break;

        case 1:
          crash.stats.dropped++;
          restore_range (real, c, c->offset, end, pinned);
          break;

        default:
          crash.stats.torn++;
          for (gint64 s = c->offset; s < end;)
            {
              gint64 s_end = MIN (end, (s / SECTOR_SIZE + 1) * SECTOR_SIZE);

              if (g_rand_boolean (crash.rand))
                restore_range (real, c, s, s_end, pinned);
              else
                pin (pinned, s, s_end);
              s = s_end;
            }
          if (final_size < 0)
            final_size = c->new_size;
          break;
        }
    }

  if (final_size < 0)
    final_size = g_array_index (log->changes, Change, 0).old_size;

  rc = real_size (real, &size_now);
  if (rc != SQLITE_OK)
    g_error ("crashvfs: could not stat %s (%d)", log->path, rc);
  if (size_now != final_size)
    {
      crash.stats.cut_back++;
      rc = real->pMethods->xTruncate (real, final_size);
      if (rc != SQLITE_OK)
        g_error ("crashvfs: could not truncate %s (%d)", log->path, rc);
    }

  real->pMethods->xClose (real);
  g_free (real);
}

static gint
compare_logs (gconstpointer a,
              gconstpointer b)
{
  const FileLog *la = *(FileLog * const *) a;
  const FileLog *lb = *(FileLog * const *) b;

  return strcmp (la->path, lb->path);
}

static void
do_crash (void)
{
  g_autoptr(GPtrArray) logs = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_return_if_fail (!crash.crashed);

  /* Same seed, same crash: walk the files in a fixed order. */
  g_hash_table_iter_init (&iter, crash.logs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (logs, value);
  g_ptr_array_sort (logs, compare_logs);

  memset (&crash.stats, 0, sizeof crash.stats);
  for (guint i = 0; i < logs->len; i++)
    {
      FileLog *log = g_ptr_array_index (logs, i);

      if (log->changes->len > 0)
        crash_file (log);
    }

  g_hash_table_remove_all (crash.logs);
  crash.crashed = TRUE;
  g_debug ("crashvfs: crash: %u files, %u kept, %u dropped, %u torn, %u cut back",
           crash.stats.files, crash.stats.kept, crash.stats.dropped,
           crash.stats.torn, crash.stats.cut_back);
}

/* sqlite3_io_methods */

static int
crash_file_close (sqlite3_file *file)
{
  CrashFile *f = (CrashFile *) file;
  int rc = SQLITE_OK;

  /* Closing releases the real file whatever happened: what was written
   * and not synced stays logged, as it stays in the page cache. */
  if (f->real->pMethods != NULL)
    rc = f->real->pMethods->xClose (f->real);
  g_clear_pointer (&f->path, g_free);
  return rc;
}

static int
crash_file_read (sqlite3_file  *file,
                 void          *buf,
                 int            amt,
                 sqlite3_int64  offset)
{
  CrashFile *f = (CrashFile *) file;

  if (crash.crashed || inject_failure (CRASHVFS_OP_READ))
    return SQLITE_IOERR_READ;
  return f->real->pMethods->xRead (f->real, buf, amt, offset);
}

static int
crash_file_write (sqlite3_file  *file,
                  const void    *buf,
                  int            amt,
                  sqlite3_int64  offset)
{
  CrashFile *f = (CrashFile *) file;
  Change c = { 0 };
  gint64 size;
  gint64 growth;
  int rc;

  if (crash.crashed)
    return SQLITE_IOERR_WRITE;
  if (inject_failure (CRASHVFS_OP_WRITE))
    return crash.fail_full ? SQLITE_FULL : SQLITE_IOERR_WRITE;

  rc = real_size (f->real, &size);
  if (rc != SQLITE_OK)
    return rc;

  growth = MAX (0, offset + amt - size);
  if (crash.budget >= 0 && growth > 0 && crash.grown + growth > crash.budget)
    {
      crash.failures++;
      return SQLITE_FULL;
    }

  if (f->path != NULL)
    {
      c.offset = offset;
      c.len = amt;
      c.old = g_malloc (amt);
      c.old_size = size;
      rc = read_pre_image (f->real, offset, amt, size, c.old);
      if (rc != SQLITE_OK)
        {
          g_free (c.old);
          return rc;
        }
    }

  rc = f->real->pMethods->xWrite (f->real, buf, amt, offset);
  if (rc == SQLITE_OK)
    crash.grown += growth;

  if (f->path != NULL)
    {
      /* Even a failed write may have changed part of the range. */
      if (real_size (f->real, &c.new_size) != SQLITE_OK)
        c.new_size = MAX (size, offset + amt);
      g_array_append_val (file_log_get (f->path, f->flags)->changes, c);
    }
  return rc;
}

static int
crash_file_truncate (sqlite3_file  *file,
                     sqlite3_int64  new_size)
{
  CrashFile *f = (CrashFile *) file;
  Change c = { 0 };
  gint64 size;
  int rc;

  if (crash.crashed || inject_failure (CRASHVFS_OP_TRUNCATE))
    return SQLITE_IOERR_TRUNCATE;

  rc = real_size (f->real, &size);
  if (rc != SQLITE_OK)
    return rc;

  if (f->path != NULL)
    {
      c.offset = MIN (new_size, size);
      c.len = size - c.offset;
      c.old = g_malloc (MAX (c.len, 1));
      c.old_size = size;
      rc = read_pre_image (f->real, c.offset, c.len, size, c.old);
      if (rc != SQLITE_OK)
        {
          g_free (c.old);
          return rc;
        }
    }

  rc = f->real->pMethods->xTruncate (f->real, new_size);

  if (f->path != NULL)
    {
      if (real_size (f->real, &c.new_size) != SQLITE_OK)
        c.new_size = new_size;
      g_array_append_val (file_log_get (f->path, f->flags)->changes, c);
    }
  return rc;
}

static int
crash_file_sync (sqlite3_file *file,
                 int           flags)
{
  CrashFile *f = (CrashFile *) file;
  int rc;

  if (crash.crashed || inject_failure (CRASHVFS_OP_SYNC))
    return SQLITE_IOERR_FSYNC;

  crash.sync_count++;
  if (crash.crash_at != 0 && crash.sync_count == crash.crash_at)
    {
      /* The power fails before this sync reaches the disk. */
      do_crash ();
      return SQLITE_IOERR_FSYNC;
    }

  rc = f->real->pMethods->xSync (f->real, flags);
  if (rc == SQLITE_OK && f->path != NULL)
    g_hash_table_remove (crash.logs, f->path);
  return rc;
}

static int
crash_file_size (sqlite3_file  *file,
                 sqlite3_int64 *size)
{
  CrashFile *f = (CrashFile *) file;

  if (crash.crashed)
    return SQLITE_IOERR_FSTAT;
  return f->real->pMethods->xFileSize (f->real, size);
}

static int
crash_file_lock (sqlite3_file *file,
                 int           lock)
{
  CrashFile *f = (CrashFile *) file;

  if (crash.crashed)
    return SQLITE_IOERR_LOCK;
  return f->real->pMethods->xLock (f->real, lock);
}

static int
crash_file_unlock (sqlite3_file *file,
                   int           lock)
{
  CrashFile *f = (CrashFile *) file;

  /* Releasing a lock writes nothing; let it through so that a reopen in
   * the same process is not refused. */
  return f->real->pMethods->xUnlock (f->real, lock);
}

static int
crash_file_check_reserved_lock (sqlite3_file *file,
                                int          *out)
{
  CrashFile *f = (CrashFile *) file;

  if (crash.crashed)
    return SQLITE_IOERR_CHECKRESERVEDLOCK;
  return f->real->pMethods->xCheckReservedLock (f->real, out);
}

static int
crash_file_control (sqlite3_file *file,
                    int           op,
                    void         *arg)
{
  CrashFile *f = (CrashFile *) file;
  int rc;

  switch (op)
    {
    case SQLITE_FCNTL_SIZE_HINT:
      /* The unix VFS would allocate space behind the log's back; a hint
       * may be ignored. */
      return SQLITE_OK;

    case SQLITE_FCNTL_VFSNAME:
      rc = f->real->pMethods->xFileControl (f->real, op, arg);
      if (rc == SQLITE_OK)
        *(char **) arg = sqlite3_mprintf (CRASHVFS_NAME "/%z", *(char **) arg);
      return rc;

    default:
      if (crash.crashed)
        return SQLITE_IOERR;
      return f->real->pMethods->xFileControl (f->real, op, arg);
    }
}

static int
crash_file_sector_size (sqlite3_file *file)
{
  CrashFile *f = (CrashFile *) file;

  return f->real->pMethods->xSectorSize (f->real);
}

static int
crash_file_device_characteristics (sqlite3_file *file)
{
  CrashFile *f = (CrashFile *) file;

  return f->real->pMethods->xDeviceCharacteristics (f->real);
}

static int
crash_file_shm_map (sqlite3_file  *file,
                    int            region,
                    int            size,
                    int            extend,
                    void volatile **out)
{
  CrashFile *f = (CrashFile *) file;

  if (crash.crashed)
    return SQLITE_IOERR_SHMMAP;
  return f->real->pMethods->xShmMap (f->real, region, size, extend, out);
}

static int
crash_file_shm_lock (sqlite3_file *file,
                     int           offset,
                     int           n,
                     int           flags)
{
  CrashFile *f = (CrashFile *) file;

  return f->real->pMethods->xShmLock (f->real, offset, n, flags);
}

static void
crash_file_shm_barrier (sqlite3_file *file)
{
  CrashFile *f = (CrashFile *) file;

  f->real->pMethods->xShmBarrier (f->real);
}

static int
crash_file_shm_unmap (sqlite3_file *file,
                      int           delete_flag)
{
  CrashFile *f = (CrashFile *) file;

  return f->real->pMethods->xShmUnmap (f->real, delete_flag);
}

/* Version 2: no xFetch, so no memory-mapped page escapes the log. */
static const sqlite3_io_methods crash_io_methods = {
  2,
  crash_file_close,
  crash_file_read,
  crash_file_write,
  crash_file_truncate,
  crash_file_sync,
  crash_file_size,
  crash_file_lock,
  crash_file_unlock,
  crash_file_check_reserved_lock,
  crash_file_control,
  crash_file_sector_size,
  crash_file_device_characteristics,
  crash_file_shm_map,
  crash_file_shm_lock,
  crash_file_shm_barrier,
  crash_file_shm_unmap,
  NULL,
  NULL,
};

/* sqlite3_vfs */

static int
crash_vfs_open (sqlite3_vfs  *vfs,
                const char   *name,
                sqlite3_file *file,
                int           flags,
                int          *out_flags)
{
  CrashFile *f = (CrashFile *) file;
  int rc;

  memset (f, 0, sizeof *f);
  f->real = (sqlite3_file *) ((guint8 *) f + CRASH_FILE_HEAD);

  if (crash.crashed)
    return SQLITE_IOERR;

  rc = crash.under->xOpen (crash.under, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK)
    return rc;

  /* A temporary file (no name) cannot outlive the process: no log. */
  if (name != NULL && (flags & SQLITE_OPEN_DELETEONCLOSE) == 0)
    f->path = g_strdup (name);
  f->flags = flags;
  f->base.pMethods = &crash_io_methods;
  return SQLITE_OK;
}

static int
crash_vfs_delete (sqlite3_vfs *vfs,
                  const char  *name,
                  int          sync_dir)
{
  int rc;

  if (crash.crashed)
    return SQLITE_IOERR_DELETE;

  rc = crash.under->xDelete (crash.under, name, sync_dir);
  if (rc == SQLITE_OK)
    g_hash_table_remove (crash.logs, name);
  return rc;
}

static int
crash_vfs_access (sqlite3_vfs *vfs,
                  const char  *name,
                  int          flags,
                  int         *out)
{
  return crash.under->xAccess (crash.under, name, flags, out);
}

static int
crash_vfs_full_pathname (sqlite3_vfs *vfs,
                         const char  *name,
                         int          n,
                         char        *out)
{
  return crash.under->xFullPathname (crash.under, name, n, out);
}

static void *
crash_vfs_dl_open (sqlite3_vfs *vfs,
                   const char  *path)
{
  return crash.under->xDlOpen (crash.under, path);
}

static void
crash_vfs_dl_error (sqlite3_vfs *vfs,
                    int          n,
                    char        *out)
{
  crash.under->xDlError (crash.under, n, out);
}

static void (*crash_vfs_dl_sym (sqlite3_vfs *vfs,
                                void        *handle,
                                const char  *symbol)) (void)
{
  return crash.under->xDlSym (crash.under, handle, symbol);
}

static void
crash_vfs_dl_close (sqlite3_vfs *vfs,
                    void        *handle)
{
  crash.under->xDlClose (crash.under, handle);
}

static int
crash_vfs_randomness (sqlite3_vfs *vfs,
                      int          n,
                      char        *out)
{
  return crash.under->xRandomness (crash.under, n, out);
}

static int
crash_vfs_sleep (sqlite3_vfs *vfs,
                 int          microseconds)
{
  return crash.under->xSleep (crash.under, microseconds);
}

static int
crash_vfs_current_time (sqlite3_vfs *vfs,
                        double      *out)
{
  return crash.under->xCurrentTime (crash.under, out);
}

static int
crash_vfs_get_last_error (sqlite3_vfs *vfs,
                          int          n,
                          char        *out)
{
  return crash.under->xGetLastError != NULL ? crash.under->xGetLastError (crash.under, n, out) : 0;
}

static int
crash_vfs_current_time_int64 (sqlite3_vfs   *vfs,
                              sqlite3_int64 *out)
{
  double now;
  int rc;

  if (crash.under->iVersion >= 2 && crash.under->xCurrentTimeInt64 != NULL)
    return crash.under->xCurrentTimeInt64 (crash.under, out);

  rc = crash.under->xCurrentTime (crash.under, &now);
  *out = (sqlite3_int64) (now * 86400000.0);
  return rc;
}

/* Public API */

void
crashvfs_register (const char *base_vfs)
{
  sqlite3_vfs *under;
  int rc;

  if (crash.registered)
    return;

  under = sqlite3_vfs_find (base_vfs);
  g_assert_nonnull (under);

  crash.under = under;
  crash.logs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, file_log_free);
  crash.rand = g_rand_new_with_seed (0);

  crash.vfs.iVersion = 2;
  crash.vfs.szOsFile = (int) (CRASH_FILE_HEAD + under->szOsFile);
  crash.vfs.mxPathname = under->mxPathname;
  crash.vfs.zName = CRASHVFS_NAME;
  crash.vfs.xOpen = crash_vfs_open;
  crash.vfs.xDelete = crash_vfs_delete;
  crash.vfs.xAccess = crash_vfs_access;
  crash.vfs.xFullPathname = crash_vfs_full_pathname;
  crash.vfs.xDlOpen = crash_vfs_dl_open;
  crash.vfs.xDlError = crash_vfs_dl_error;
  crash.vfs.xDlSym = crash_vfs_dl_sym;
  crash.vfs.xDlClose = crash_vfs_dl_close;
  crash.vfs.xRandomness = crash_vfs_randomness;
  crash.vfs.xSleep = crash_vfs_sleep;
  crash.vfs.xCurrentTime = crash_vfs_current_time;
  crash.vfs.xGetLastError = crash_vfs_get_last_error;
  crash.vfs.xCurrentTimeInt64 = crash_vfs_current_time_int64;

  rc = sqlite3_vfs_register (&crash.vfs, 0);
  g_assert_cmpint (rc, ==, SQLITE_OK);
  crash.registered = TRUE;
}

void
crashvfs_reset (guint32 seed)
{
  g_return_if_fail (crash.registered);

  g_hash_table_remove_all (crash.logs);
  g_rand_set_seed (crash.rand, seed);
  crash.sync_count = 0;
  crash.crash_at = 0;
  crash.crashed = FALSE;
  memset (&crash.stats, 0, sizeof crash.stats);
  crash.fail_ops = CRASHVFS_OP_ALL;
  crash.fail_full = FALSE;
  crash.op_count = 0;
  crash.fail_at = 0;
  crash.fail_persistent = FALSE;
  crash.failures = 0;
  crash.budget = -1;
  crash.grown = 0;
}

void
crashvfs_arm (guint after_n_syncs)
{
  crash.crash_at = after_n_syncs == 0 ? 0 : crash.sync_count + after_n_syncs;
}

void
crashvfs_crash_now (void)
{
  g_return_if_fail (crash.registered);

  if (!crash.crashed)
    do_crash ();
}

gboolean
crashvfs_has_crashed (void)
{
  return crash.crashed;
}

void
crashvfs_get_crash_stats (CrashvfsCrashStats *stats)
{
  *stats = crash.stats;
}

guint
crashvfs_get_sync_count (void)
{
  return crash.sync_count;
}

guint
crashvfs_get_op_count (void)
{
  return crash.op_count;
}

void
crashvfs_set_fail_ops (CrashvfsOps ops,
                       gboolean    writes_fail_full)
{
  crash.fail_ops = ops;
  crash.fail_full = writes_fail_full;
}

void
crashvfs_fail_after (guint    n_ops,
                     gboolean persistent)
{
  crash.op_count = 0;
  crash.fail_at = n_ops;
  crash.fail_persistent = persistent;
}

guint
crashvfs_get_failures (void)
{
  return crash.failures;
}

void
crashvfs_set_disk_budget (gint64 bytes)
{
  crash.budget = bytes;
  crash.grown = 0;
}

gint64
crashvfs_get_disk_growth (void)
{
  return crash.grown;
}
