#define G_LOG_DOMAIN "relais-sync"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "relais-changeset.h"
#include "relais-spool.h"

/* state.json holds a handful of short strings and a cursor. */
#define STATE_MAX           (64 * 1024)
/* A dossier's keys: one wrap per epoch and a line per member, past and
 * present; a registration: a wrap per member. */
#define KEYS_FILE_MAX       (16 * 1024 * 1024)
#define ENVELOPE_FILE_MAX   RELAIS_CHANGESET_MAX_SIZE
#define PUSH_BATCH          100
/* PROTOCOL.md caps request bodies at 110 MiB, less than 100 envelopes of
 * 1 MiB once in base64: a batch also stops at 64 MiB of base64. */
#define PUSH_BATCH_BYTES    (48 * 1024 * 1024)
#define PULL_LIMIT          500
/* A temporary file older than this was left by a cut, not by a writer
 * still at work in another process (the app sealing while a timer syncs). */
#define STALE_TMP_SECONDS   3600

struct _RelaisSpool {
  char      *dir;
  GPtrArray *batch;   /* PendingFile, between begin_batch and commit_batch */
};

static const char *const subdirs[] = { "out", "in", "keys", "register", "retired", "refused" };

typedef struct {
  char   *server;
  char   *cacert;
  char   *user_id;
  char   *org;
  char   *device_id;
  char   *cursor;
  char   *last_error;
  gint64  last_success;
  guint64 in_counter;
} State;

static void
state_clear (State *state)
{
  g_clear_pointer (&state->server, g_free);
  g_clear_pointer (&state->cacert, g_free);
  g_clear_pointer (&state->user_id, g_free);
  g_clear_pointer (&state->org, g_free);
  g_clear_pointer (&state->device_id, g_free);
  g_clear_pointer (&state->cursor, g_free);
  g_clear_pointer (&state->last_error, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (State, state_clear)

/* Files ---------------------------------------------------------------------- */

typedef enum {
  IO_CREATE,
  IO_OPEN,
  IO_READ,
  IO_WRITE,
  IO_REMOVE,
  IO_MOVE,
  IO_PROTECT,
} IoAction;

static gboolean
set_errno_error (GError    **error,
                 int         errsv,
                 IoAction    action,
                 const char *path)
{
  GIOErrorEnum code = g_io_error_from_errno (errsv);
  const char *reason = g_strerror (errsv);

  switch (action)
    {
    case IO_CREATE:
      g_set_error (error, G_IO_ERROR, code, _("Could not create “%s”: %s."), path, reason);
      break;
    case IO_OPEN:
      g_set_error (error, G_IO_ERROR, code, _("Could not open “%s”: %s."), path, reason);
      break;
    case IO_READ:
      g_set_error (error, G_IO_ERROR, code, _("Could not read “%s”: %s."), path, reason);
      break;
    case IO_WRITE:
      g_set_error (error, G_IO_ERROR, code, _("Could not write “%s”: %s."), path, reason);
      break;
    case IO_REMOVE:
      g_set_error (error, G_IO_ERROR, code, _("Could not remove “%s”: %s."), path, reason);
      break;
    case IO_MOVE:
      g_set_error (error, G_IO_ERROR, code, _("Could not move “%s”: %s."), path, reason);
      break;
    case IO_PROTECT:
    default:
      g_set_error (error, G_IO_ERROR, code, _("Could not protect “%s”: %s."), path, reason);
      break;
    }
  return FALSE;
}

typedef enum {
  SPOOL_STATE,
  SPOOL_DEVICE_KEY,
  SPOOL_REGISTRATION,
  SPOOL_KEYS,
} SpoolFile;

/* One clear error for a spool file that is not what the spool wrote. */
static gboolean
damaged (GError     **error,
         SpoolFile    file,
         const char  *detail)
{
  const char *what;

  switch (file)
    {
    case SPOOL_STATE:
      what = _("The sync spool's state file is damaged.");
      break;
    case SPOOL_DEVICE_KEY:
      what = _("The sync spool's device key is damaged.");
      break;
    case SPOOL_REGISTRATION:
      what = _("A dossier's registration in the sync spool is damaged.");
      break;
    case SPOOL_KEYS:
    default:
      what = _("A dossier's keys in the sync spool are damaged.");
      break;
    }
  if (detail != NULL)
    g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED, "%s %s", what, detail);
  else
    g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED, what);
  return FALSE;
}

static gboolean
fsync_dir (const char  *dir,
           GError     **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int errsv;

  if (fd < 0)
    return set_errno_error (error, errno, IO_OPEN, dir);
  if (fsync (fd) != 0)
    {
      errsv = errno;
      close (fd);
      return set_errno_error (error, errsv, IO_WRITE, dir);
    }
  close (fd);
  return TRUE;
}

typedef enum {
  WRITE_SYNC     = 1 << 0,   /* fsync the file before the rename */
  WRITE_SYNC_DIR = 1 << 1,   /* and the directory after it */
} WriteFlags;

/* Writes @data to a new hidden file "@prefix-XXXXXX" in @dir and returns
 * its path, fsynced with @sync. */
static char *
write_hidden (const char  *dir,
              const char  *prefix,
              const void  *data,
              gsize        len,
              int          mode,
              gboolean     sync,
              GError     **error)
{
  g_autofree char *tmpl = g_strconcat (prefix, "-XXXXXX", NULL);
  g_autofree char *tmp = g_build_filename (dir, tmpl, NULL);
  const guint8 *p = data;
  gsize done = 0;
  int fd, errsv;

  fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0)
    {
      set_errno_error (error, errno, IO_CREATE, dir);
      return NULL;
    }
  while (done < len)
    {
      ssize_t n = write (fd, p + done, len - done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          errsv = n < 0 ? errno : ENOSPC;
          goto fail;
        }
      done += (gsize) n;
    }
  if (sync && fsync (fd) != 0)
    {
      errsv = errno;
      goto fail;
    }
  if (close (fd) != 0)
    {
      errsv = errno;
      fd = -1;
      goto fail;
    }
  return g_steal_pointer (&tmp);

fail:
  if (fd >= 0)
    close (fd);
  g_unlink (tmp);
  set_errno_error (error, errsv, IO_WRITE, dir);
  return NULL;
}

/* Writes @name in @dir whole: a temporary file, fsync, rename over the
 * name; with WRITE_SYNC_DIR, fsync of the directory too, so that the name
 * is there after a power cut. */
static gboolean
write_file (const char    *dir,
            const char    *name,
            const void    *data,
            gsize          len,
            int            mode,
            WriteFlags     flags,
            GError       **error)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autofree char *tmp = write_hidden (dir, ".tmp", data, len, mode,
                                       (flags & WRITE_SYNC) != 0, error);

  if (tmp == NULL)
    return FALSE;
  if (rename (tmp, path) != 0)
    {
      int errsv = errno;

      g_unlink (tmp);
      return set_errno_error (error, errsv, IO_WRITE, path);
    }
  return (flags & WRITE_SYNC_DIR) == 0 || fsync_dir (dir, error);
}

/* A file of a batch, written hidden, named once the batch is durable. */
typedef struct {
  char *tmp;
  char *path;
} PendingFile;

static void
pending_file_free (PendingFile *f)
{
  if (f->tmp != NULL)
    g_unlink (f->tmp);
  g_free (f->tmp);
  g_free (f->path);
  g_free (f);
}

static gboolean
add_pending (GPtrArray   *pending,
             const char  *dir,
             const char  *prefix,
             const char  *name,
             const void  *data,
             gsize        len,
             GError     **error)
{
  PendingFile *f;
  char *tmp = write_hidden (dir, prefix, data, len, 0600, FALSE, error);

  if (tmp == NULL)
    return FALSE;
  f = g_new0 (PendingFile, 1);
  f->tmp = tmp;
  f->path = g_build_filename (dir, name, NULL);
  g_ptr_array_add (pending, f);
  return TRUE;
}

/* Makes every file written so far durable, in one call rather than one
 * fsync per file. */
static gboolean
sync_file_system (const char  *dir,
                  GError     **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int errsv;

  if (fd < 0)
    return set_errno_error (error, errno, IO_OPEN, dir);
  if (syncfs (fd) != 0)
    {
      errsv = errno;
      close (fd);
      return set_errno_error (error, errsv, IO_WRITE, dir);
    }
  close (fd);
  return TRUE;
}

/* Makes a batch durable with one syncfs(), then names its files; the
 * caller fsyncs the directories.  A name thus always holds a whole file,
 * at the cost of one sync for the batch rather than one per file. */
static gboolean
commit_pending (GPtrArray   *pending,
                const char  *dir,
                GError     **error)
{
  if (pending->len == 0)
    return TRUE;
  if (!sync_file_system (dir, error))
    return FALSE;
  for (guint i = 0; i < pending->len; i++)
    {
      PendingFile *f = g_ptr_array_index (pending, i);

      if (rename (f->tmp, f->path) != 0)
        return set_errno_error (error, errno, IO_WRITE, f->path);
      g_clear_pointer (&f->tmp, g_free);
    }
  return TRUE;
}

/* Reads a whole file of at most @max bytes.  NULL with no error when it
 * does not exist and @missing_ok. */
static GBytes *
read_file (const char  *path,
           gsize        max,
           gboolean     missing_ok,
           GError     **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  GStatBuf st;

  if (g_lstat (path, &st) != 0)
    {
      if (errno == ENOENT && missing_ok)
        return NULL;
      set_errno_error (error, errno, IO_READ, path);
      return NULL;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                   _("“%s” is not a regular file."), path);
      return NULL;
    }
  if ((guint64) st.st_size > max)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                   _("“%s” is too large."), path);
      return NULL;
    }
  if (!g_file_get_contents (path, &data, &len, error))
    return NULL;
  if (len > max)
    {
      g_set_error (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                   _("“%s” is too large."), path);
      return NULL;
    }
  return g_bytes_new_take (g_steal_pointer (&data), len);
}

static gboolean
name_is_valid (const char *name,
               const char *suffix)
{
  return name != NULL && *name != '\0' && *name != '.' && strchr (name, '/') == NULL
         && strlen (name) < 128 && g_str_has_suffix (name, suffix)
         && strlen (name) > strlen (suffix);
}

static gboolean
id_is_valid (const char *id)
{
  gsize n = 0;

  if (id == NULL)
    return FALSE;
  for (const char *p = id; *p != '\0'; p++, n++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return FALSE;
  return n >= 1 && n <= RELAIS_CHANGESET_MAX_ID_LEN;
}

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

/* The names in @sub ending with @suffix, sorted; temporary files (".tmp-")
 * are not listed. */
static GPtrArray *
list_dir (RelaisSpool  *spool,
          const char   *sub,
          const char   *suffix,
          GError      **error)
{
  g_autofree char *dir = g_build_filename (spool->dir, sub, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GDir) d = g_dir_open (dir, 0, error);
  const char *name;

  if (d == NULL)
    return NULL;
  while ((name = g_dir_read_name (d)) != NULL)
    if (name_is_valid (name, suffix))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  return g_steal_pointer (&names);
}

static guint
count_dir (RelaisSpool *spool,
           const char  *sub,
           const char  *suffix)
{
  g_autoptr(GPtrArray) names = list_dir (spool, sub, suffix, NULL);

  return names != NULL ? names->len : 0;
}

static void
remove_stale_tmp (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = NULL;
      GStatBuf st;

      if (!g_str_has_prefix (name, ".tmp-"))
        continue;
      path = g_build_filename (dir, name, NULL);
      if (g_lstat (path, &st) == 0 && S_ISREG (st.st_mode)
          && now - (gint64) st.st_mtime > STALE_TMP_SECONDS)
        g_unlink (path);
    }
}

static gboolean
make_private_dir (const char  *path,
                  GError     **error)
{
  GStatBuf st;

  if (g_mkdir (path, 0700) != 0 && errno != EEXIST)
    return set_errno_error (error, errno, IO_CREATE, path);
  if (g_lstat (path, &st) != 0)
    return set_errno_error (error, errno, IO_OPEN, path);
  if (!S_ISDIR (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY,
                   _("“%s” is not a directory."), path);
      return FALSE;
    }
  /* Wrapped keys and the device key: nobody else's business. */
  if ((st.st_mode & 0077) != 0 && g_chmod (path, 0700) != 0)
    return set_errno_error (error, errno, IO_PROTECT, path);
  return TRUE;
}

/* state.json ---------------------------------------------------------------- */

static gboolean
json_is_flat (const char *text,
              gsize       len)
{
  gboolean in_string = FALSE, escaped = FALSE;
  guint depth = 0;

  for (gsize i = 0; i < len; i++)
    {
      char c = text[i];

      if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (c == '\\')
            escaped = TRUE;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if ((c == '[' || c == '{') && ++depth > 8)
        return FALSE;
      else if ((c == ']' || c == '}') && depth > 0)
        depth--;
    }
  return TRUE;
}

static JsonObject *
parse_local_object (GBytes      *bytes,
                    SpoolFile    what,
                    GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  gsize len;
  const char *text = g_bytes_get_data (bytes, &len);
  JsonNode *root;

  if (len == 0 || memchr (text, '\0', len) != NULL || !g_utf8_validate_len (text, len, NULL)
      || !json_is_flat (text, len)
      || !json_parser_load_from_data (parser, text, (gssize) len, NULL))
    {
      damaged (error, what, _("It is not JSON."));
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      damaged (error, what, _("It is not a JSON object."));
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

static gboolean
state_string (JsonObject  *o,
              const char  *name,
              char       **out,
              GError     **error)
{
  JsonNode *node = json_object_get_member (o, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return damaged (error, SPOOL_STATE, _("A field is not a string."));
  *out = g_strdup (json_node_get_string (node));
  return TRUE;
}

static gboolean
state_int (JsonObject  *o,
           const char  *name,
           gint64      *out,
           GError     **error)
{
  JsonNode *node = json_object_get_member (o, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64
      || json_node_get_int (node) < 0)
    return damaged (error, SPOOL_STATE, _("A field is not a count."));
  *out = json_node_get_int (node);
  return TRUE;
}

static gboolean
load_state (RelaisSpool  *spool,
            State        *state,
            GError      **error)
{
  g_autofree char *path = g_build_filename (spool->dir, "state.json", NULL);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(JsonObject) o = NULL;
  g_autoptr(GError) local = NULL;
  gint64 counter = 0;

  memset (state, 0, sizeof *state);
  bytes = read_file (path, STATE_MAX, TRUE, &local);
  if (bytes == NULL)
    {
      if (local == NULL)
        return TRUE;
      return damaged (error, SPOOL_STATE, local->message);
    }
  o = parse_local_object (bytes, SPOOL_STATE, error);
  if (o == NULL
      || !state_string (o, "server", &state->server, error)
      || !state_string (o, "cacert", &state->cacert, error)
      || !state_string (o, "user_id", &state->user_id, error)
      || !state_string (o, "org", &state->org, error)
      || !state_string (o, "device_id", &state->device_id, error)
      || !state_string (o, "cursor", &state->cursor, error)
      || !state_string (o, "last_error", &state->last_error, error)
      || !state_int (o, "last_success", &state->last_success, error)
      || !state_int (o, "in_counter", &counter, error))
    {
      state_clear (state);
      return FALSE;
    }
  state->in_counter = (guint64) counter;
  if ((state->device_id != NULL || state->user_id != NULL || state->server != NULL)
      && (!id_is_valid (state->device_id) || !id_is_valid (state->user_id)
          || state->server == NULL))
    {
      state_clear (state);
      return damaged (error, SPOOL_STATE, _("The identity is incomplete."));
    }
  return TRUE;
}

static void
add_string (JsonBuilder *b,
            const char  *name,
            const char  *value)
{
  json_builder_set_member_name (b, name);
  if (value != NULL)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static char *
builder_to_string (JsonBuilder *b)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (b);

  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

static gboolean
save_state (RelaisSpool  *spool,
            const State  *state,
            GError      **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *text = NULL;

  json_builder_begin_object (b);
  add_string (b, "server", state->server);
  add_string (b, "cacert", state->cacert);
  add_string (b, "user_id", state->user_id);
  add_string (b, "org", state->org);
  add_string (b, "device_id", state->device_id);
  add_string (b, "cursor", state->cursor);
  add_string (b, "last_error", state->last_error);
  json_builder_set_member_name (b, "last_success");
  json_builder_add_int_value (b, state->last_success);
  json_builder_set_member_name (b, "in_counter");
  json_builder_add_int_value (b, (gint64) state->in_counter);
  json_builder_end_object (b);
  text = builder_to_string (b);
  return write_file (spool->dir, "state.json", text, strlen (text), 0600,
                     WRITE_SYNC | WRITE_SYNC_DIR, error);
}

/* The spool ------------------------------------------------------------------ */

RelaisSpool *
relais_spool_open (const char  *vault_dir,
                   GError     **error)
{
  g_autofree char *dir = NULL;
  RelaisSpool *spool;

  g_return_val_if_fail (vault_dir != NULL, NULL);

  if (!g_file_test (vault_dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("The vault directory “%s” does not exist."), vault_dir);
      return NULL;
    }
  dir = g_build_filename (vault_dir, "spool", NULL);
  if (!make_private_dir (dir, error))
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (subdirs); i++)
    {
      g_autofree char *sub = g_build_filename (dir, subdirs[i], NULL);

      if (!make_private_dir (sub, error))
        return NULL;
      remove_stale_tmp (sub);
    }
  remove_stale_tmp (dir);
  spool = g_new0 (RelaisSpool, 1);
  spool->dir = g_steal_pointer (&dir);
  return spool;
}

void
relais_spool_free (RelaisSpool *spool)
{
  if (spool == NULL)
    return;
  /* An uncommitted batch is dropped: its hidden files go. */
  g_clear_pointer (&spool->batch, g_ptr_array_unref);
  g_free (spool->dir);
  g_free (spool);
}

const char *
relais_spool_get_dir (RelaisSpool *spool)
{
  return spool->dir;
}

void
relais_spool_identity_free (RelaisSpoolIdentity *identity)
{
  if (identity == NULL)
    return;
  g_free (identity->server);
  g_free (identity->cacert);
  g_free (identity->user_id);
  g_free (identity->org);
  g_free (identity->device_id);
  g_free (identity);
}

gboolean
relais_spool_set_identity (RelaisSpool                *spool,
                           const RelaisSpoolIdentity  *identity,
                           const guint8               *device_sk,
                           GError                    **error)
{
  g_auto(State) state = { 0 };
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (identity != NULL && device_sk != NULL, FALSE);

  if (identity->server == NULL || !id_is_valid (identity->user_id)
      || !id_is_valid (identity->device_id))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("The sync identity is incomplete."));
      return FALSE;
    }
  /* The key first: a state naming a device whose key is missing would be
   * an enrolled spool that cannot sign. */
  if (!write_file (spool->dir, "device.key", device_sk, crypto_sign_SECRETKEYBYTES,
                   0600, WRITE_SYNC | WRITE_SYNC_DIR, error))
    return FALSE;
  /* A new identity is a new device: the old cursor and status are not its
   * own.  The counter of in/ carries on, so names stay in order. */
  if (!load_state (spool, &state, &local))
    state_clear (&state);
  g_clear_pointer (&state.cursor, g_free);
  g_clear_pointer (&state.last_error, g_free);
  state.last_success = 0;
  g_free (state.server);
  state.server = g_strdup (identity->server);
  g_free (state.cacert);
  state.cacert = g_strdup (identity->cacert);
  g_free (state.user_id);
  state.user_id = g_strdup (identity->user_id);
  g_free (state.org);
  state.org = g_strdup (identity->org);
  g_free (state.device_id);
  state.device_id = g_strdup (identity->device_id);
  return save_state (spool, &state, error);
}

RelaisSpoolIdentity *
relais_spool_get_identity (RelaisSpool  *spool,
                           GError      **error)
{
  g_auto(State) state = { 0 };
  RelaisSpoolIdentity *identity;

  if (!load_state (spool, &state, error))
    return NULL;
  if (state.device_id == NULL)
    return NULL;
  identity = g_new0 (RelaisSpoolIdentity, 1);
  identity->server = g_steal_pointer (&state.server);
  identity->cacert = g_steal_pointer (&state.cacert);
  identity->user_id = g_steal_pointer (&state.user_id);
  identity->org = g_steal_pointer (&state.org);
  identity->device_id = g_steal_pointer (&state.device_id);
  return identity;
}

/* The device key, in guarded memory (sodium_free it). */
static guint8 *
read_device_key (RelaisSpool  *spool,
                 GError      **error)
{
  g_autofree char *path = g_build_filename (spool->dir, "device.key", NULL);
  guint8 *sk;
  struct stat st;
  gsize done = 0;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    {
      if (errno == ENOENT)
        damaged (error, SPOOL_DEVICE_KEY, _("It is missing."));
      else
        set_errno_error (error, errno, IO_READ, path);
      return NULL;
    }
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)
      || st.st_size != crypto_sign_SECRETKEYBYTES)
    {
      close (fd);
      damaged (error, SPOOL_DEVICE_KEY, _("It has the wrong size."));
      return NULL;
    }
  /* Only this user may read it (a restored backup may have widened it). */
  if ((st.st_mode & 0077) != 0)
    (void) fchmod (fd, 0600);
  sk = sodium_malloc (crypto_sign_SECRETKEYBYTES);
  if (sk == NULL)
    g_error ("out of guarded memory");
  while (done < crypto_sign_SECRETKEYBYTES)
    {
      ssize_t n = read (fd, sk + done, crypto_sign_SECRETKEYBYTES - done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          close (fd);
          sodium_free (sk);
          damaged (error, SPOOL_DEVICE_KEY, _("It could not be read."));
          return NULL;
        }
      done += (gsize) n;
    }
  close (fd);
  return sk;
}

gboolean
relais_spool_is_enrolled (RelaisSpool *spool)
{
  g_autoptr(RelaisSpoolIdentity) identity = relais_spool_get_identity (spool, NULL);
  g_autofree char *path = g_build_filename (spool->dir, "device.key", NULL);
  GStatBuf st;

  return identity != NULL && g_lstat (path, &st) == 0 && S_ISREG (st.st_mode)
         && st.st_size == crypto_sign_SECRETKEYBYTES;
}

RelaisClient *
relais_spool_make_client (RelaisSpool  *spool,
                          GError      **error)
{
  g_autoptr(RelaisSpoolIdentity) identity = NULL;
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(GError) local = NULL;
  guint8 *sk;

  identity = relais_spool_get_identity (spool, &local);
  if (identity == NULL)
    {
      if (local != NULL)
        g_propagate_error (error, g_steal_pointer (&local));
      else
        g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                             _("This vault is not enrolled with a sync server."));
      return NULL;
    }
  client = relais_client_new (identity->server, identity->cacert, error);
  if (client == NULL)
    return NULL;
  sk = read_device_key (spool, error);
  if (sk == NULL)
    return NULL;
  relais_client_set_device (client, identity->device_id, sk);
  sodium_free (sk);
  return g_steal_pointer (&client);
}

/* Queues ---------------------------------------------------------------------- */

static char *
envelope_name (const guint8 *id)
{
  char hex[RELAIS_CHANGESET_ID_SIZE * 2 + 1];

  sodium_bin2hex (hex, sizeof hex, id, RELAIS_CHANGESET_ID_SIZE);
  return g_strconcat (hex, ".rlcs", NULL);
}

gboolean
relais_spool_add_out (RelaisSpool  *spool,
                      GBytes       *envelope,
                      GError      **error)
{
  g_auto(RelaisChangesetHeader) header = { 0 };
  g_autofree char *dir = g_build_filename (spool->dir, "out", NULL);
  g_autofree char *name = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (envelope, &len);

  if (!relais_changeset_peek (data, len, &header, error))
    return FALSE;
  name = envelope_name (header.id);
  if (spool->batch != NULL)
    return add_pending (spool->batch, dir, ".tmp", name, data, len, error);
  return write_file (dir, name, data, len, 0600, WRITE_SYNC | WRITE_SYNC_DIR, error);
}

gboolean
relais_spool_add_out_many (RelaisSpool  *spool,
                           GPtrArray    *envelopes,
                           GError      **error)
{
  g_autofree char *dir = g_build_filename (spool->dir, "out", NULL);
  g_autoptr(GPtrArray) pending = g_ptr_array_new_with_free_func ((GDestroyNotify) pending_file_free);

  /* All or nothing: every envelope is checked before any is written. */
  for (guint i = 0; i < envelopes->len; i++)
    {
      g_auto(RelaisChangesetHeader) header = { 0 };
      GBytes *envelope = g_ptr_array_index (envelopes, i);

      if (!relais_changeset_peek (g_bytes_get_data (envelope, NULL), g_bytes_get_size (envelope),
                                  &header, error))
        return FALSE;
    }
  for (guint i = 0; i < envelopes->len; i++)
    {
      g_auto(RelaisChangesetHeader) header = { 0 };
      GBytes *envelope = g_ptr_array_index (envelopes, i);
      gsize len;
      const guint8 *data = g_bytes_get_data (envelope, &len);
      g_autofree char *name = NULL;

      if (!relais_changeset_peek (data, len, &header, error))
        return FALSE;
      name = envelope_name (header.id);
      if (!add_pending (pending, dir, ".tmp", name, data, len, error))
        return FALSE;
    }
  return commit_pending (pending, dir, error)
         && (pending->len == 0 || fsync_dir (dir, error));
}

gboolean
relais_spool_add_registration (RelaisSpool  *spool,
                               const char   *dossier_id,
                               GPtrArray    *members,
                               GBytes       *recovery_wrapped_key,
                               GError      **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *dir = g_build_filename (spool->dir, "register", NULL);
  g_autofree char *name = NULL;
  g_autofree char *text = NULL;

  if (!id_is_valid (dossier_id) || members == NULL || members->len == 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("A dossier's registration needs its id and its members."));
      return FALSE;
    }
  json_builder_begin_object (b);
  add_string (b, "dossier_id", dossier_id);
  json_builder_set_member_name (b, "members");
  json_builder_begin_array (b);
  for (guint i = 0; i < members->len; i++)
    {
      RelaisWrappedKey *k = g_ptr_array_index (members, i);
      gsize len;
      const guint8 *data;
      g_autofree char *wrapped = NULL;

      if (!id_is_valid (k->user_id) || k->wrapped_key == NULL)
        {
          g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                               _("A member of a dossier's registration is not valid."));
          return FALSE;
        }
      data = g_bytes_get_data (k->wrapped_key, &len);
      wrapped = relais_sync_base64_encode (data, len);
      json_builder_begin_object (b);
      add_string (b, "user_id", k->user_id);
      json_builder_set_member_name (b, "epoch");
      json_builder_add_int_value (b, k->epoch);
      add_string (b, "wrapped_key", wrapped);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  if (recovery_wrapped_key != NULL)
    {
      gsize len;
      const guint8 *data = g_bytes_get_data (recovery_wrapped_key, &len);
      g_autofree char *wrapped = relais_sync_base64_encode (data, len);

      add_string (b, "recovery_wrapped_key", wrapped);
    }
  json_builder_end_object (b);
  text = builder_to_string (b);
  name = g_strconcat (dossier_id, ".json", NULL);
  if (spool->batch != NULL)
    return add_pending (spool->batch, dir, ".tmp", name, text, strlen (text), error);
  return write_file (dir, name, text, strlen (text), 0600, WRITE_SYNC | WRITE_SYNC_DIR, error);
}

void
relais_spool_begin_batch (RelaisSpool *spool)
{
  g_return_if_fail (spool->batch == NULL);
  spool->batch = g_ptr_array_new_with_free_func ((GDestroyNotify) pending_file_free);
}

gboolean
relais_spool_commit_batch (RelaisSpool  *spool,
                           GError      **error)
{
  g_autoptr(GPtrArray) batch = g_steal_pointer (&spool->batch);
  g_autofree char *out = g_build_filename (spool->dir, "out", NULL);
  g_autofree char *reg = g_build_filename (spool->dir, "register", NULL);

  g_return_val_if_fail (batch != NULL, FALSE);
  if (batch->len == 0)
    return TRUE;
  return commit_pending (batch, spool->dir, error)
         && fsync_dir (out, error)
         && fsync_dir (reg, error);
}

/* A registration file back into create's arguments. */
static gboolean
read_registration (RelaisSpool  *spool,
                   const char   *name,
                   char        **out_dossier,
                   GPtrArray   **out_members,
                   GBytes      **out_recovery,
                   GError      **error)
{
  g_autofree char *path = g_build_filename (spool->dir, "register", name, NULL);
  g_autoptr(GBytes) bytes = read_file (path, KEYS_FILE_MAX, FALSE, error);
  g_autoptr(JsonObject) o = NULL;
  g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  JsonNode *node;
  JsonArray *array;
  const char *dossier;

  if (bytes == NULL)
    return FALSE;
  o = parse_local_object (bytes, SPOOL_REGISTRATION, error);
  if (o == NULL)
    return FALSE;
  node = json_object_get_member (o, "dossier_id");
  if (node == NULL || json_node_get_value_type (node) != G_TYPE_STRING
      || !id_is_valid (json_node_get_string (node)))
    return damaged (error, SPOOL_REGISTRATION, _("Its id is not valid."));
  dossier = json_node_get_string (node);
  node = json_object_get_member (o, "members");
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return damaged (error, SPOOL_REGISTRATION, _("It has no members."));
  array = json_node_get_array (node);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *e = json_array_get_element (array, i);
      JsonObject *m;
      JsonNode *user, *epoch, *wrapped;
      g_autofree guint8 *data = NULL;
      gsize len;
      g_autoptr(GBytes) key = NULL;

      if (!JSON_NODE_HOLDS_OBJECT (e))
        return damaged (error, SPOOL_REGISTRATION, _("A member is not an object."));
      m = json_node_get_object (e);
      user = json_object_get_member (m, "user_id");
      epoch = json_object_get_member (m, "epoch");
      wrapped = json_object_get_member (m, "wrapped_key");
      if (user == NULL || json_node_get_value_type (user) != G_TYPE_STRING
          || !id_is_valid (json_node_get_string (user))
          || epoch == NULL || json_node_get_value_type (epoch) != G_TYPE_INT64
          || json_node_get_int (epoch) < 0 || json_node_get_int (epoch) > G_MAXUINT32
          || wrapped == NULL || json_node_get_value_type (wrapped) != G_TYPE_STRING)
        return damaged (error, SPOOL_REGISTRATION, _("A member is not valid."));
      data = relais_sync_base64_decode (json_node_get_string (wrapped), 4096, &len, NULL);
      if (data == NULL)
        return damaged (error, SPOOL_REGISTRATION, _("A wrapped key is not base64url."));
      key = g_bytes_new_take (g_steal_pointer (&data), len);
      g_ptr_array_add (members, relais_wrapped_key_new (json_node_get_string (user),
                                                        (guint32) json_node_get_int (epoch),
                                                        key));
    }
  *out_recovery = NULL;
  node = json_object_get_member (o, "recovery_wrapped_key");
  if (node != NULL && !JSON_NODE_HOLDS_NULL (node))
    {
      g_autofree guint8 *data = NULL;
      gsize len;

      if (json_node_get_value_type (node) != G_TYPE_STRING
          || (data = relais_sync_base64_decode (json_node_get_string (node), 4096, &len, NULL)) == NULL)
        return damaged (error, SPOOL_REGISTRATION, _("The recovery key is not valid."));
      *out_recovery = g_bytes_new_take (g_steal_pointer (&data), len);
    }
  *out_dossier = g_strdup (dossier);
  *out_members = g_steal_pointer (&members);
  return TRUE;
}

guint
relais_spool_count_pending (RelaisSpool *spool)
{
  return count_dir (spool, "out", ".rlcs") + count_dir (spool, "retired", ".rlcs")
         + count_dir (spool, "register", ".json");
}

static GBytes *
read_envelope (RelaisSpool  *spool,
               const char   *sub,
               const char   *name,
               GError      **error)
{
  g_autofree char *path = NULL;

  if (!name_is_valid (name, ".rlcs"))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("Not the name of a change set in the spool."));
      return NULL;
    }
  path = g_build_filename (spool->dir, sub, name, NULL);
  return read_file (path, ENVELOPE_FILE_MAX, FALSE, error);
}

/* Removing a file the engine has applied needs no fsync of the directory:
 * should a power cut bring it back, applying it again changes nothing. */
static gboolean
remove_envelope (RelaisSpool  *spool,
                 const char   *sub,
                 const char   *name,
                 GError      **error)
{
  g_autofree char *path = NULL;

  if (!name_is_valid (name, ".rlcs"))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("Not the name of a change set in the spool."));
      return FALSE;
    }
  path = g_build_filename (spool->dir, sub, name, NULL);
  if (g_unlink (path) != 0 && errno != ENOENT)
    return set_errno_error (error, errno, IO_REMOVE, path);
  return TRUE;
}

GPtrArray *
relais_spool_list_in (RelaisSpool  *spool,
                      GError      **error)
{
  return list_dir (spool, "in", ".rlcs", error);
}

GBytes *
relais_spool_read_in (RelaisSpool  *spool,
                      const char   *name,
                      GError      **error)
{
  return read_envelope (spool, "in", name, error);
}

gboolean
relais_spool_remove_in (RelaisSpool  *spool,
                        const char   *name,
                        GError      **error)
{
  return remove_envelope (spool, "in", name, error);
}

GPtrArray *
relais_spool_list_retired (RelaisSpool  *spool,
                           GError      **error)
{
  return list_dir (spool, "retired", ".rlcs", error);
}

GBytes *
relais_spool_read_retired (RelaisSpool  *spool,
                           const char   *name,
                           GError      **error)
{
  return read_envelope (spool, "retired", name, error);
}

gboolean
relais_spool_remove_retired (RelaisSpool  *spool,
                             const char   *name,
                             GError      **error)
{
  return remove_envelope (spool, "retired", name, error);
}

/* Keys ------------------------------------------------------------------------ */

RelaisDossierKeys *
relais_spool_get_keys (RelaisSpool  *spool,
                       const char   *dossier_id,
                       GError      **error)
{
  g_autofree char *name = NULL;
  g_autofree char *path = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) local = NULL;
  g_autoptr(RelaisDossierKeys) keys = NULL;
  gsize len;
  const char *text;

  if (!id_is_valid (dossier_id))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("A dossier id is not valid."));
      return NULL;
    }
  name = g_strconcat (dossier_id, ".json", NULL);
  path = g_build_filename (spool->dir, "keys", name, NULL);
  bytes = read_file (path, KEYS_FILE_MAX, TRUE, error);
  if (bytes == NULL)
    return NULL;
  text = g_bytes_get_data (bytes, &len);
  keys = relais_dossier_keys_from_json (text, len, &local);
  if (keys == NULL)
    {
      damaged (error, SPOOL_KEYS, NULL);
      return NULL;
    }
  if (strcmp (keys->dossier_id, dossier_id) != 0)
    {
      damaged (error, SPOOL_KEYS, _("They are another dossier's."));
      return NULL;
    }
  return g_steal_pointer (&keys);
}

static gboolean
write_keys (RelaisSpool              *spool,
            const RelaisDossierKeys  *keys,
            GError                  **error)
{
  g_autofree char *dir = g_build_filename (spool->dir, "keys", NULL);
  g_autofree char *name = NULL;
  g_autofree char *text = NULL;

  if (!id_is_valid (keys->dossier_id))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("A dossier id is not valid."));
      return FALSE;
    }
  name = g_strconcat (keys->dossier_id, ".json", NULL);
  text = relais_dossier_keys_to_json (keys);
  return write_file (dir, name, text, strlen (text), 0600, WRITE_SYNC | WRITE_SYNC_DIR, error);
}

gboolean
relais_spool_set_keys (RelaisSpool              *spool,
                       const RelaisDossierKeys  *keys,
                       GError                  **error)
{
  return write_keys (spool, keys, error);
}

gboolean
relais_spool_forget_keys (RelaisSpool  *spool,
                          const char   *dossier_id,
                          GError      **error)
{
  g_autofree char *name = NULL;
  g_autofree char *path = NULL;

  if (!id_is_valid (dossier_id))
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_INVALID,
                           _("A dossier id is not valid."));
      return FALSE;
    }
  name = g_strconcat (dossier_id, ".json", NULL);
  path = g_build_filename (spool->dir, "keys", name, NULL);
  if (g_unlink (path) != 0 && errno != ENOENT)
    return set_errno_error (error, errno, IO_REMOVE, path);
  return TRUE;
}

/* Status ---------------------------------------------------------------------- */

gint64
relais_spool_get_last_success (RelaisSpool *spool)
{
  g_auto(State) state = { 0 };

  if (!load_state (spool, &state, NULL))
    return 0;
  return state.last_success;
}

char *
relais_spool_get_last_error (RelaisSpool *spool)
{
  g_auto(State) state = { 0 };
  g_autoptr(GError) local = NULL;

  if (!load_state (spool, &state, &local))
    return g_strdup (local->message);
  return g_steal_pointer (&state.last_error);
}

/* Wipe ------------------------------------------------------------------------ */

static gboolean
remove_tree (const char  *path,
             GError     **error)
{
  GStatBuf st;

  if (g_lstat (path, &st) != 0)
    return errno == ENOENT ? TRUE : set_errno_error (error, errno, IO_REMOVE, path);
  if (S_ISDIR (st.st_mode))
    {
      g_autoptr(GDir) d = g_dir_open (path, 0, error);
      const char *name;

      if (d == NULL)
        return FALSE;
      while ((name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (!remove_tree (child, error))
            return FALSE;
        }
      if (g_rmdir (path) != 0)
        return set_errno_error (error, errno, IO_REMOVE, path);
      return TRUE;
    }
  if (g_unlink (path) != 0)
    return set_errno_error (error, errno, IO_REMOVE, path);
  return TRUE;
}

gboolean
relais_spool_wipe (RelaisSpool  *spool,
                   GError      **error)
{
  g_autofree char *key = g_build_filename (spool->dir, "device.key", NULL);
  int fd;

  /* Overwrite the device key before unlinking it, for what that is worth
   * on a journaling file system: it is the one secret here. */
  fd = open (key, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0)
    {
      guint8 zeros[crypto_sign_SECRETKEYBYTES] = { 0 };

      if (write (fd, zeros, sizeof zeros) == (ssize_t) sizeof zeros)
        (void) fsync (fd);
      close (fd);
    }
  if (!remove_tree (spool->dir, error))
    return FALSE;
  return TRUE;
}

/* Exchange --------------------------------------------------------------------- */

typedef struct {
  RelaisSpool          *spool;
  RelaisClient         *client;
  RelaisExchangeReport *report;
  GCancellable         *cancellable;
  /* The first refusal other than epoch_retired: the exchange goes on, but
   * does not count as complete. */
  char                 *refusal;
  guint                 refusals;
  RelaisClientError     refusal_code;
  /* relais_spool_exchange_direct(): pulled pages go there, not to in/. */
  RelaisSpoolPageFunc   page_func;
  gpointer              page_data;
} Exchange;

static RelaisClientError
refusal_code (const char *code)
{
  if (g_strcmp0 (code, "not_member") == 0 || g_strcmp0 (code, "author_mismatch") == 0
      || g_strcmp0 (code, "not_admin") == 0)
    return RELAIS_CLIENT_ERROR_FORBIDDEN;
  if (g_strcmp0 (code, "malformed") == 0 || g_strcmp0 (code, "bad_base64") == 0)
    return RELAIS_CLIENT_ERROR_MALFORMED;
  if (g_strcmp0 (code, "too_large") == 0)
    return RELAIS_CLIENT_ERROR_TOO_LARGE;
  return RELAIS_CLIENT_ERROR_CONFLICT;
}

/* @why: the server's code for a change set, its message for a dossier. */
static void
note_refusal (Exchange          *x,
              const char        *why,
              RelaisClientError  code)
{
  x->refusals++;
  if (x->refusal == NULL)
    {
      x->refusal = g_strdup (why);
      x->refusal_code = code;
    }
  if (x->report != NULL)
    x->report->refused++;
}

/* Whether @error refuses one request for what it carries, rather than
 * this device or the connection: the exchange goes on without it. */
static gboolean
is_refusal (const GError *error)
{
  return error->domain == RELAIS_CLIENT_ERROR
         && (error->code == RELAIS_CLIENT_ERROR_FORBIDDEN
             || error->code == RELAIS_CLIENT_ERROR_CONFLICT
             || error->code == RELAIS_CLIENT_ERROR_MALFORMED
             || error->code == RELAIS_CLIENT_ERROR_TOO_LARGE
             || error->code == RELAIS_CLIENT_ERROR_NOT_FOUND);
}

/* Moves a file the server refused for good into refused/, durably (or it
 * could come back and be refused again). */
static gboolean
set_aside (RelaisSpool  *spool,
           const char   *path,
           const char   *name,
           GError      **error)
{
  g_autofree char *refused = g_build_filename (spool->dir, "refused", NULL);
  g_autofree char *to = g_build_filename (refused, name, NULL);

  if (g_mkdir_with_parents (refused, 0700) != 0)
    return set_errno_error (error, errno, IO_CREATE, refused);
  if (g_rename (path, to) != 0)
    return set_errno_error (error, errno, IO_MOVE, path);
  return fsync_dir (refused, error);
}

static gboolean
exchange_register (Exchange  *x,
                   GError   **error)
{
  g_autoptr(GPtrArray) names = list_dir (x->spool, "register", ".json", error);
  g_autofree char *dir = g_build_filename (x->spool->dir, "register", NULL);

  if (names == NULL)
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      g_autofree char *dossier = NULL;
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autoptr(GPtrArray) members = NULL;
      g_autoptr(GBytes) recovery = NULL;
      g_autoptr(GError) local = NULL;

      /* A damaged file is kept for a person to look at, and does not stop
       * the rest of the exchange. */
      if (!read_registration (x->spool, name, &dossier, &members, &recovery, &local))
        {
          note_refusal (x, local->message, RELAIS_CLIENT_ERROR_MALFORMED);
          g_clear_error (&local);
          continue;
        }
      /* A retried creation by a member succeeds: a registration whose
       * answer was lost is simply sent again. */
      if (!relais_client_dossier_create (x->client, dossier, members, recovery,
                                         x->cancellable, &local))
        {
          /* Refused for this dossier alone (not_member…): kept, counted,
           * and the rest of the exchange goes on. */
          if (is_refusal (local))
            {
              note_refusal (x, local->message, local->code);
              g_clear_error (&local);
              if (!set_aside (x->spool, path, name, error))
                return FALSE;
              continue;
            }
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      if (g_unlink (path) != 0 && errno != ENOENT)
        return set_errno_error (error, errno, IO_REMOVE, path);
      if (x->report != NULL)
        x->report->registered++;
    }
  return names->len == 0 || fsync_dir (dir, error);
}

static gboolean
push_batch (Exchange   *x,
            GPtrArray  *names,
            GPtrArray  *envelopes,
            GError    **error)
{
  g_autofree char *out = g_build_filename (x->spool->dir, "out", NULL);
  g_autofree char *retired = g_build_filename (x->spool->dir, "retired", NULL);
  g_autoptr(GPtrArray) results = NULL;
  gboolean moved = FALSE;

  results = relais_client_push (x->client, envelopes, x->cancellable, error);
  if (results == NULL)
    return FALSE;
  for (guint i = 0; i < results->len; i++)
    {
      RelaisPushResult *r = g_ptr_array_index (results, i);
      const char *name = g_ptr_array_index (names, i);
      g_autofree char *path = g_build_filename (out, name, NULL);

      if (r->status == RELAIS_PUSH_STORED || r->status == RELAIS_PUSH_DUPLICATE)
        {
          if (g_unlink (path) != 0 && errno != ENOENT)
            return set_errno_error (error, errno, IO_REMOVE, path);
          if (x->report != NULL)
            x->report->pushed++;
        }
      else if (g_strcmp0 (r->error, "epoch_retired") == 0)
        {
          g_autofree char *to = g_build_filename (retired, name, NULL);

          if (g_rename (path, to) != 0)
            return set_errno_error (error, errno, IO_MOVE, path);
          moved = TRUE;
          if (x->report != NULL)
            x->report->refused++;
        }
      else
        {
          note_refusal (x, r->error, refusal_code (r->error));
          if (!set_aside (x->spool, path, name, error))
            return FALSE;
        }
    }
  /* A removal lost to a power cut only pushes again (duplicate); a move
   * must reach retired/ for the engine to re-seal it. */
  if (moved && !fsync_dir (retired, error))
    return FALSE;
  return fsync_dir (out, error);
}

static gboolean
exchange_push (Exchange  *x,
               GError   **error)
{
  g_autoptr(GPtrArray) names = list_dir (x->spool, "out", ".rlcs", error);
  g_autoptr(GPtrArray) batch_names = NULL;
  g_autoptr(GPtrArray) batch = NULL;
  gsize batch_bytes = 0;

  if (names == NULL)
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      g_autoptr(GError) local = NULL;
      g_autoptr(GBytes) envelope = read_envelope (x->spool, "out", name, &local);
      g_auto(RelaisChangesetHeader) header = { 0 };

      if (envelope == NULL && g_error_matches (local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        continue;   /* pushed by a concurrent exchange */
      if (envelope == NULL
          || !relais_changeset_peek (g_bytes_get_data (envelope, NULL),
                                     g_bytes_get_size (envelope), &header, NULL))
        {
          /* Kept for a person to look at; the exchange is not complete. */
          note_refusal (x, "malformed", RELAIS_CLIENT_ERROR_MALFORMED);
          continue;
        }
      if (batch != NULL && batch_bytes + g_bytes_get_size (envelope) > PUSH_BATCH_BYTES)
        {
          if (!push_batch (x, batch_names, batch, error))
            return FALSE;
          g_clear_pointer (&batch, g_ptr_array_unref);
          g_clear_pointer (&batch_names, g_ptr_array_unref);
        }
      if (batch == NULL)
        {
          batch = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
          batch_names = g_ptr_array_new_with_free_func (g_free);
          batch_bytes = 0;
        }
      batch_bytes += g_bytes_get_size (envelope);
      g_ptr_array_add (batch, g_steal_pointer (&envelope));
      g_ptr_array_add (batch_names, g_strdup (name));
      if (batch->len == PUSH_BATCH)
        {
          if (!push_batch (x, batch_names, batch, error))
            return FALSE;
          g_clear_pointer (&batch, g_ptr_array_unref);
          g_clear_pointer (&batch_names, g_ptr_array_unref);
        }
    }
  return batch == NULL || push_batch (x, batch_names, batch, error);
}

/* The ids of envelopes already in in/ ("SEQ-ID.rlcs"), so that a page
 * pulled again after a cut adds nothing twice, and the highest SEQ.  Also
 * removes what a cut pull left hidden (".pull-" files): only an exchange,
 * under the lock, writes those. */
static GHashTable *
scan_in (RelaisSpool  *spool,
         guint64      *out_max,
         GError      **error)
{
  g_autoptr(GPtrArray) names = list_dir (spool, "in", ".rlcs", error);
  g_autoptr(GHashTable) ids = NULL;

  if (names == NULL)
    return NULL;
  for (gsize k = 0; k < 2; k++)
    {
      g_autofree char *dir = g_build_filename (spool->dir, k == 0 ? "in" : "keys", NULL);
      g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
      const char *name;

      while (d != NULL && (name = g_dir_read_name (d)) != NULL)
        if (g_str_has_prefix (name, ".pull-"))
          {
            g_autofree char *path = g_build_filename (dir, name, NULL);

            g_unlink (path);
          }
    }
  ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  *out_max = 0;
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = g_ptr_array_index (names, i);
      const char *dash = strchr (name, '-');
      g_autofree char *digits = NULL;
      guint64 seq;

      if (dash == NULL)
        continue;
      digits = g_strndup (name, dash - name);
      if (g_ascii_string_to_unsigned (digits, 10, 0, G_MAXUINT64, &seq, NULL))
        *out_max = MAX (*out_max, seq);
      g_hash_table_add (ids, g_strndup (dash + 1, strlen (dash + 1) - strlen (".rlcs")));
    }
  return g_steal_pointer (&ids);
}

/* Writes @envelopes of @page (those not in in/ already) and, when
 * @with_keys, the page's keys, durably; then saves the cursor past @page.
 * Returns the number of envelopes named in in/ through @out_named. */
static gboolean
save_page (Exchange        *x,
           State           *state,
           GHashTable      *ids,
           guint64         *counter,
           RelaisPullPage  *page,
           GPtrArray       *envelopes,
           gboolean         with_keys,
           guint           *out_named,
           GError         **error)
{
  g_autofree char *in = g_build_filename (x->spool->dir, "in", NULL);
  g_autofree char *keys_dir = g_build_filename (x->spool->dir, "keys", NULL);
  g_autoptr(GPtrArray) pending = g_ptr_array_new_with_free_func ((GDestroyNotify) pending_file_free);
  guint named = 0;

  *out_named = 0;
  for (guint i = 0; i < envelopes->len; i++)
    {
      GBytes *envelope = g_ptr_array_index (envelopes, i);
      g_auto(RelaisChangesetHeader) header = { 0 };
      char hex[RELAIS_CHANGESET_ID_SIZE * 2 + 1];
      g_autofree char *name = NULL;
      gsize len;
      const guint8 *data = g_bytes_get_data (envelope, &len);

      if (!relais_changeset_peek (data, len, &header, error))
        return FALSE;   /* the client checked it already */
      sodium_bin2hex (hex, sizeof hex, header.id, sizeof header.id);
      if (g_hash_table_contains (ids, hex))
        continue;
      (*counter)++;
      name = g_strdup_printf ("%020" G_GUINT64_FORMAT "-%s.rlcs", *counter, hex);
      if (!add_pending (pending, in, ".pull", name, data, len, error))
        return FALSE;
      g_hash_table_add (ids, g_strdup (hex));
    }
  named = pending->len;
  for (guint i = 0; with_keys && i < page->keys->len; i++)
    {
      RelaisDossierKeys *keys = g_ptr_array_index (page->keys, i);
      g_autofree char *name = g_strconcat (keys->dossier_id, ".json", NULL);
      g_autofree char *text = relais_dossier_keys_to_json (keys);

      if (!add_pending (pending, keys_dir, ".pull", name, text, strlen (text), error))
        return FALSE;
    }
  /* The page is written hidden, made durable by one syncfs() (rather
   * than 500 fsyncs, which cost more than the rest of the pull), then
   * named: a name in in/ or keys/ always holds a whole file, even
   * after a power cut, and the engine never reads half a page. */
  if (pending->len > 0
      && (!commit_pending (pending, in, error)
          || (named > 0 && !fsync_dir (in, error))
          || (pending->len > named && !fsync_dir (keys_dir, error))))
    return FALSE;
  *out_named = named;

  /* Only now that the page is on disk (or applied) may the cursor pass
   * it. */
  if (page->more && g_strcmp0 (page->cursor, state->cursor) == 0)
    {
      g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL,
                           _("The server's answer is not valid: it announces more change sets but its cursor does not move."));
      return FALSE;
    }
  g_free (state->cursor);
  state->cursor = g_strdup (page->cursor);
  state->in_counter = *counter;
  {
    /* Reload the rest: status fields are not this loop's to keep. */
    g_auto(State) current = { 0 };

    if (!load_state (x->spool, &current, error))
      return FALSE;
    if (g_strcmp0 (current.device_id, state->device_id) != 0)
      {
        g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_FAILED,
                             _("The vault was enrolled again during the sync."));
        return FALSE;
      }
    g_free (current.cursor);
    current.cursor = g_strdup (state->cursor);
    current.in_counter = *counter;
    if (!save_state (x->spool, &current, error))
      return FALSE;
  }
  return TRUE;
}

/* Fetching pages ahead (relais_spool_exchange_direct()): a worker thread
 * pulls page N+1 (HTTP, JSON, base64) while the caller takes page N.
 * Only the worker uses the client until it is joined. */
#define FETCH_AHEAD 8
/* …and no more than this much of envelopes (answers may be of 8 MiB). */
#define FETCH_AHEAD_BYTES (16 * 1024 * 1024)

typedef struct {
  RelaisClient *client;
  GCancellable *cancellable; /* ours: a failure of the caller's side stops a pull under way */
  char         *cursor;      /* the worker's: where the next pull starts */
  GThread      *thread;      /* NULL: pull on the caller's thread */
  GMutex        mutex;
  GCond         cond;
  GQueue        pages;       /* RelaisPullPage, fetched, not yet taken */
  gsize         queued;      /* bytes of their envelopes */
  gboolean      done;        /* the last page is queued, or an error */
  gboolean      stop;        /* the caller wants no more */
  GError       *error;       /* why the worker stopped early */
} Fetcher;

static gsize
page_bytes (RelaisPullPage *page)
{
  gsize bytes = 0;

  for (guint i = 0; i < page->changesets->len; i++)
    bytes += g_bytes_get_size (g_ptr_array_index (page->changesets, i));
  return bytes;
}

/* Pulls one page into the queue; FALSE when there is nothing more to
 * pull (last page, or an error kept in @f->error). */
static gboolean
fetch_step (Fetcher *f)
{
  GError *local = NULL;
  RelaisPullPage *page;
  gboolean more;

  page = relais_client_pull (f->client, f->cursor, PULL_LIMIT, f->cancellable, &local);
  if (page != NULL && page->more && g_strcmp0 (page->cursor, f->cursor) == 0)
    {
      g_set_error_literal (&local, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL,
                           _("The server's answer is not valid: it announces more change sets but its cursor does not move."));
      g_clear_pointer (&page, relais_pull_page_free);
    }
  more = page != NULL && page->more;
  if (page != NULL)
    {
      g_free (f->cursor);
      f->cursor = g_strdup (page->cursor);
    }
  g_mutex_lock (&f->mutex);
  if (page != NULL)
    {
      g_queue_push_tail (&f->pages, page);
      f->queued += page_bytes (page);
    }
  else
    f->error = local;
  if (!more)
    f->done = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->mutex);
  return more;
}

static gpointer
fetch_pages (gpointer data)
{
  Fetcher *f = data;

  for (;;)
    {
      gboolean stop;

      g_mutex_lock (&f->mutex);
      while (!f->stop && (f->pages.length >= FETCH_AHEAD || f->queued >= FETCH_AHEAD_BYTES))
        g_cond_wait (&f->cond, &f->mutex);
      stop = f->stop;
      g_mutex_unlock (&f->mutex);
      if (stop || !fetch_step (f))
        break;
    }
  g_mutex_lock (&f->mutex);
  f->done = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->mutex);
  return NULL;
}

/* The next page in order, or NULL with the error that ended the pull. */
static RelaisPullPage *
fetch_next (Fetcher  *f,
            GError  **error)
{
  RelaisPullPage *page;

  if (f->thread == NULL)
    {
      g_mutex_lock (&f->mutex);
      gboolean need = f->pages.length == 0 && !f->done;
      g_mutex_unlock (&f->mutex);
      if (need)
        fetch_step (f);
    }
  g_mutex_lock (&f->mutex);
  while (f->pages.length == 0 && !f->done)
    g_cond_wait (&f->cond, &f->mutex);
  page = g_queue_pop_head (&f->pages);
  if (page != NULL)
    f->queued -= page_bytes (page);
  g_cond_broadcast (&f->cond);
  if (page == NULL)
    {
      if (f->error != NULL)
        g_propagate_error (error, g_steal_pointer (&f->error));
      else
        g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_FAILED,
                             _("The pull ended before its last page."));
    }
  g_mutex_unlock (&f->mutex);
  return page;
}

/* A page already fetched, or NULL (without waiting). */
static RelaisPullPage *
fetch_ready (Fetcher *f)
{
  RelaisPullPage *page;

  g_mutex_lock (&f->mutex);
  page = g_queue_pop_head (&f->pages);
  if (page != NULL)
    f->queued -= page_bytes (page);
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->mutex);
  return page;
}

/* Stops and joins the worker, dropping pages it fetched ahead. */
static void
fetcher_clear (Fetcher *f)
{
  g_mutex_lock (&f->mutex);
  f->stop = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->mutex);
  g_cancellable_cancel (f->cancellable);
  if (f->thread != NULL)
    g_thread_join (g_steal_pointer (&f->thread));
  g_queue_clear_full (&f->pages, (GDestroyNotify) relais_pull_page_free);
  g_clear_error (&f->error);
  g_clear_pointer (&f->cursor, g_free);
  g_clear_object (&f->cancellable);
  g_mutex_clear (&f->mutex);
  g_cond_clear (&f->cond);
}

/* Pages handed over together (at most): about one commit's worth for the
 * engine (4,000 envelopes), fetched while the previous ones apply. */
#define DIRECT_BATCH_PAGES FETCH_AHEAD

static void
forward_cancel (GCancellable *cancellable,
                gpointer      data)
{
  g_cancellable_cancel (data);
}

static gboolean
exchange_pull_direct (Exchange    *x,
                      State       *state,
                      GHashTable  *ids,
                      guint64     *counter,
                      GError     **error)
{
  Fetcher f = { 0 };
  gboolean ok = TRUE;
  gulong handler = 0;

  f.client = x->client;
  f.cancellable = g_cancellable_new ();
  if (x->cancellable != NULL)
    handler = g_cancellable_connect (x->cancellable, G_CALLBACK (forward_cancel),
                                     f.cancellable, NULL);
  f.cursor = g_strdup (state->cursor);
  g_mutex_init (&f.mutex);
  g_cond_init (&f.cond);
  g_queue_init (&f.pages);
  f.thread = g_thread_try_new ("relais-fetch", fetch_pages, &f, NULL);

  for (;;)
    {
      g_autoptr(GPtrArray) pages = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_pull_page_free);
      g_autoptr(GPtrArray) keep = NULL;
      RelaisPullPage *page = fetch_next (&f, error);
      RelaisPullPage *last;
      guint named = 0;
      gsize bytes;

      /* Waits for one page; takes those already fetched with it. */
      if (page == NULL)
        {
          ok = FALSE;
          break;
        }
      g_ptr_array_add (pages, page);
      bytes = page_bytes (page);
      while (pages->len < DIRECT_BATCH_PAGES && bytes < FETCH_AHEAD_BYTES && page->more
             && (page = fetch_ready (&f)) != NULL)
        {
          g_ptr_array_add (pages, page);
          bytes += page_bytes (page);
        }
      last = g_ptr_array_index (pages, pages->len - 1);

      keep = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      if (!x->page_func (pages, keep, x->page_data, error))
        {
          ok = FALSE;
          break;
        }
      for (guint i = 0; x->report != NULL && i < pages->len; i++)
        x->report->pulled += ((RelaisPullPage *) g_ptr_array_index (pages, i))->changesets->len;
      if (!save_page (x, state, ids, counter, last, keep, FALSE, &named, error))
        {
          ok = FALSE;
          break;
        }
      if (!last->more)
        break;
    }
  if (handler != 0)
    g_cancellable_disconnect (x->cancellable, handler);
  fetcher_clear (&f);
  return ok;
}

static gboolean
exchange_pull (Exchange  *x,
               GError   **error)
{
  g_autoptr(GHashTable) ids = NULL;
  g_auto(State) state = { 0 };
  guint64 counter = 0;

  if (!load_state (x->spool, &state, error))
    return FALSE;
  ids = scan_in (x->spool, &counter, error);
  if (ids == NULL)
    return FALSE;
  counter = MAX (counter, state.in_counter);

  if (x->page_func != NULL)
    return exchange_pull_direct (x, &state, ids, &counter, error);

  for (;;)
    {
      g_autoptr(RelaisPullPage) page = NULL;
      guint named = 0;

      page = relais_client_pull (x->client, state.cursor, PULL_LIMIT, x->cancellable, error);
      if (page == NULL)
        return FALSE;
      if (!save_page (x, &state, ids, &counter, page, page->changesets, TRUE, &named, error))
        return FALSE;
      if (x->report != NULL)
        x->report->pulled += named;
      if (!page->more)
        return TRUE;
    }
}

/* Dossiers with envelopes in in/ but no keys/: their keys were forgotten
 * (an envelope did not open) or never came. */
static gboolean
exchange_missing_keys (Exchange  *x,
                       GError   **error)
{
  g_autoptr(GPtrArray) names = list_dir (x->spool, "in", ".rlcs", error);
  g_autoptr(GHashTable) done = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  if (names == NULL)
    return FALSE;
  for (guint i = 0; i < names->len; i++)
    {
      g_autoptr(GBytes) envelope = read_envelope (x->spool, "in", g_ptr_array_index (names, i), NULL);
      g_auto(RelaisChangesetHeader) header = { 0 };
      g_autoptr(RelaisDossierKeys) keys = NULL;
      g_autofree char *name = NULL;
      g_autofree char *path = NULL;
      g_autoptr(GError) local = NULL;

      /* A damaged file is the engine's to refuse when it applies. */
      if (envelope == NULL
          || !relais_changeset_peek (g_bytes_get_data (envelope, NULL),
                                     g_bytes_get_size (envelope), &header, NULL)
          || g_hash_table_contains (done, header.dossier))
        continue;
      g_hash_table_add (done, g_strdup (header.dossier));
      name = g_strconcat (header.dossier, ".json", NULL);
      path = g_build_filename (x->spool->dir, "keys", name, NULL);
      if (g_file_test (path, G_FILE_TEST_EXISTS))
        continue;
      keys = relais_client_dossier_keys (x->client, header.dossier, x->cancellable, &local);
      if (keys == NULL)
        {
          /* No longer a member, or the dossier is gone: the engine keeps
           * the envelope waiting; nothing here to retry. */
          if (g_error_matches (local, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NOT_FOUND)
              || g_error_matches (local, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_FORBIDDEN))
            continue;
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      if (!write_keys (x->spool, keys, error))
        return FALSE;
    }
  return TRUE;
}

static void
record_outcome (RelaisSpool  *spool,
                const GError *failure)
{
  g_auto(State) state = { 0 };

  if (!load_state (spool, &state, NULL))
    return;
  g_clear_pointer (&state.last_error, g_free);
  if (failure != NULL)
    state.last_error = g_strdup (failure->message);
  else
    state.last_success = g_get_real_time () / G_USEC_PER_SEC;
  if (!save_state (spool, &state, NULL))
    g_warning ("Could not record the outcome of the sync.");
}

static gboolean
exchange_run (RelaisSpool           *spool,
              RelaisExchangeReport  *report,
              RelaisSpoolPageFunc    page_func,
              gpointer               page_data,
              GCancellable          *cancellable,
              GError               **error)
{
  g_autofree char *lock_path = g_build_filename (spool->dir, "lock", NULL);
  g_autoptr(RelaisClient) client = NULL;
  g_autoptr(GError) local = NULL;
  Exchange x = { spool, NULL, report, cancellable, NULL, 0, 0, page_func, page_data };
  gboolean ok;
  int lock;

  if (report != NULL)
    memset (report, 0, sizeof *report);

  /* One exchange at a time per spool: the app's worker and the timer's
   * `relaisctl sync --background` would otherwise write the same names. */
  lock = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0)
    return set_errno_error (error, errno, IO_OPEN, lock_path);
  if (flock (lock, LOCK_EX | LOCK_NB) != 0)
    {
      close (lock);
      g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_UNAVAILABLE,
                           _("Another sync of this vault is running."));
      return FALSE;
    }

  client = relais_spool_make_client (spool, &local);
  x.client = client;
  ok = client != NULL
       && exchange_register (&x, &local)
       && exchange_push (&x, &local)
       && exchange_pull (&x, &local)
       && exchange_missing_keys (&x, &local);
  if (ok && x.refusal != NULL)
    {
      g_set_error (&local, RELAIS_CLIENT_ERROR, x.refusal_code,
                   _("The server refused %u of the changes waiting to be sent (first: %s)."),
                   x.refusals, x.refusal);
      ok = FALSE;
    }

  if (!ok && g_error_matches (local, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_REVOKED))
    {
      g_autoptr(GError) wipe_error = NULL;

      if (!relais_spool_wipe (spool, &wipe_error))
        g_warning ("Could not wipe the spool of a revoked device: %s", wipe_error->message);
    }
  else
    record_outcome (spool, ok ? NULL : local);

  flock (lock, LOCK_UN);
  close (lock);
  g_free (x.refusal);
  if (!ok)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return TRUE;
}

gboolean
relais_spool_exchange (RelaisSpool           *spool,
                       RelaisExchangeReport  *report,
                       GCancellable          *cancellable,
                       GError               **error)
{
  return exchange_run (spool, report, NULL, NULL, cancellable, error);
}

gboolean
relais_spool_exchange_direct (RelaisSpool           *spool,
                              RelaisExchangeReport  *report,
                              RelaisSpoolPageFunc    page_func,
                              gpointer               user_data,
                              GCancellable          *cancellable,
                              GError               **error)
{
  g_return_val_if_fail (page_func != NULL, FALSE);
  return exchange_run (spool, report, page_func, user_data, cancellable, error);
}
