#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The sync sub-commands of relaisctl (enroll, sync, share, unshare,
 * conflicts, bundle, recovery-key, recover).  They live in the sync
 * library, which the core's relaisctl.c must not reach into: relaisctl
 * lends them its global options and its way of asking for a passphrase. */

typedef struct {
  /* --vault and --passphrase-file, added to every command's options. */
  GOptionEntry  *global_entries;
  /* The vault directory, once the options are parsed. */
  const char  *(*vault_dir)      (void);
  /* The passphrase (RELAIS_PASSPHRASE, --passphrase-file or a prompt) in
   * sodium_malloc memory, to release with sodium_free(); NULL with
   * @error when there is none. */
  char        *(*get_passphrase) (GError **error);
} RelaisctlSyncContext;

/* A field for relaisctl's tab-separated output: backslash, tab and line
 * breaks escaped, so that a line is a record whatever a note holds. */
char       *relaisctl_escape_field (const char *text);

/* Whether @command is one of the sync commands. */
gboolean    relaisctl_sync_handles (const char *command);

/* Runs the sync command argv[0]; returns the exit status. */
int         relaisctl_sync_main    (const RelaisctlSyncContext  *context,
                                    int                          argc,
                                    char                       **argv);

/* The usage lines of the sync commands (translated), for relaisctl --help. */
const char *relaisctl_sync_usage   (void);

G_END_DECLS
