#pragma once

#include <glib.h>
#include <sqlite3.h>

G_BEGIN_DECLS

/* A fault-injecting SQLite VFS for tests, after SQLite's own src/test6.c
 * and src/test_vfs.c.  It sits *under* the encrypting VFS
 * (RelaisVaultOptions.base_vfs = CRASHVFS_NAME) and writes through to the
 * VFS below it (the system's default), but:
 *
 *  - power loss: it keeps, per file, the pre-image (old bytes, old size) of
 *    every write and truncation not yet followed by an xSync of that file.
 *    When the crash happens (at an armed xSync, or crashvfs_crash_now()),
 *    the unsynced changes of every file are walked newest first and each is
 *    kept, dropped (pre-image restored) or torn (pre-image restored on a
 *    random subset of its 512-byte sectors), with a seeded PRNG; a file that
 *    grew and lost the writes that made it grow is cut back.  After the
 *    crash, every I/O of every file fails with SQLITE_IOERR, so nothing the
 *    connection does afterwards can reach the disk.
 *  - I/O errors: the n-th counted operation fails (once, or from then on),
 *    with SQLITE_IOERR_READ, SQLITE_IOERR_WRITE (or SQLITE_FULL),
 *    SQLITE_IOERR_FSYNC or SQLITE_IOERR_TRUNCATE.
 *  - disk full: writes that would make files grow past a byte budget fail
 *    with SQLITE_FULL.
 *
 * Deletions and file creations are immediate and durable.  The state is
 * global and not locked: one test thread at a time. */

#define CRASHVFS_NAME "crash"

typedef enum {
  CRASHVFS_OP_READ     = 1 << 0,
  CRASHVFS_OP_WRITE    = 1 << 1,
  CRASHVFS_OP_SYNC     = 1 << 2,
  CRASHVFS_OP_TRUNCATE = 1 << 3,
  CRASHVFS_OP_ALL      = 0xf,
} CrashvfsOps;

typedef struct {
  guint files;     /* files that had unsynced changes */
  guint kept;
  guint dropped;
  guint torn;
  guint cut_back;  /* files whose size was restored */
} CrashvfsCrashStats;

/* Registers CRASHVFS_NAME over @base_vfs (NULL: SQLite's default), not as
 * the default VFS.  Calling it again does nothing. */
void     crashvfs_register          (const char  *base_vfs);

/* Forgets every record, disarms every fault, clears the crashed state and
 * the counters, and seeds the PRNG that decides the fate of writes. */
void     crashvfs_reset             (guint32      seed);

/* The @after_n_syncs-th xSync from now (1 is the next one) does not sync:
 * the crash happens instead, and that xSync fails.  0 disarms. */
void     crashvfs_arm               (guint        after_n_syncs);
/* Power loss now. */
void     crashvfs_crash_now         (void);
gboolean crashvfs_has_crashed       (void);
/* What the crash did. */
void     crashvfs_get_crash_stats   (CrashvfsCrashStats *stats);

/* xSync calls that reached the VFS since the last reset. */
guint    crashvfs_get_sync_count    (void);
/* Counted operations (see crashvfs_set_fail_ops()) since the last reset or
 * crashvfs_fail_after(). */
guint    crashvfs_get_op_count      (void);

/* Which operations count for crashvfs_fail_after() (default: all), and
 * whether failed writes report SQLITE_FULL instead of SQLITE_IOERR_WRITE. */
void     crashvfs_set_fail_ops      (CrashvfsOps  ops,
                                     gboolean     writes_fail_full);
/* Restarts the operation count; the @n_ops-th counted operation from now
 * (1 is the next one) fails, and if @persistent every counted one after it
 * too.  0 disarms. */
void     crashvfs_fail_after        (guint        n_ops,
                                     gboolean     persistent);
/* Operations failed by crashvfs_fail_after() or the disk budget. */
guint    crashvfs_get_failures      (void);

/* From now on, writes that would make the files grow by more than @bytes
 * in total fail with SQLITE_FULL, without writing anything.  A negative
 * budget removes the limit.  Either way the growth count restarts. */
void     crashvfs_set_disk_budget   (gint64       bytes);
/* Bytes the files grew by through writes since crashvfs_set_disk_budget(). */
gint64   crashvfs_get_disk_growth   (void);

G_END_DECLS
