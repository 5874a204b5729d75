#define G_LOG_DOMAIN "relais-test"

#include "config.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#include "relais-test-util.h"
#include "relais-vault.h"
#include "relais-vfs.h"

typedef struct {
  char *dir;
  RelaisKdfParams kdf;
  RelaisVaultOptions options;
} Fixture;

static void
fixture_setup (Fixture       *fx,
               gconstpointer  data)
{
  fx->dir = relais_test_make_tmpdir ("relais-vault");
  relais_kdf_params_insecure_for_tests (&fx->kdf);
  fx->options.kdf = &fx->kdf;
  fx->options.journal_mode = data;
}

static void
fixture_teardown (Fixture       *fx,
                  gconstpointer  data)
{
  relais_test_rm_rf (fx->dir);
  g_free (fx->dir);
}

static char *
vault_file (Fixture    *fx,
            const char *name)
{
  return g_build_filename (fx->dir, name, NULL);
}

/* Writes @n rows holding @marker, in one transaction. */
static void
write_markers (RelaisVault *vault,
               const char  *marker,
               guint        n)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(sqlite3_stmt) stmt = NULL;
  sqlite3 *db = relais_vault_get_db (vault);

  g_assert_true (relais_vault_exec (vault, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)", &error));
  g_assert_no_error (error);
  g_assert_true (relais_vault_begin (vault, &error));
  g_assert_cmpint (sqlite3_prepare_v2 (db, "INSERT INTO t (v) VALUES (?)", -1, &stmt, NULL), ==, SQLITE_OK);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *v = g_strdup_printf ("%s-%u-%s", marker, i, marker);
      sqlite3_bind_text (stmt, 1, v, -1, SQLITE_TRANSIENT);
      g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_DONE);
      sqlite3_reset (stmt);
    }
  g_assert_true (relais_vault_commit (vault, &error));
  g_assert_no_error (error);
}

static gint64
count_rows (RelaisVault *vault)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;

  g_assert_cmpint (sqlite3_prepare_v2 (relais_vault_get_db (vault), "SELECT count(*) FROM t", -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  return sqlite3_column_int64 (stmt, 0);
}

static gboolean
file_contains (const char *path,
               const char *needle)
{
  g_autofree char *contents = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &contents, &len, NULL))
    return FALSE;
  return memmem (contents, len, needle, strlen (needle)) != NULL;
}

static gboolean
dir_contains (const char *path,
              const char *needle,
              guint      *out_files)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;
  gboolean found = FALSE;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);
      found |= file_contains (child, needle);
      (*out_files)++;
    }
  return found;
}

static void
test_create_open (Fixture       *fx,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *recovery = NULL;
  g_autofree char *wal = vault_file (fx, "vault.db-wal");
  RelaisVault *vault;

  vault = relais_vault_create (fx->dir, "correct horse", &fx->options, &recovery, &error);
  g_assert_no_error (error);
  g_assert_nonnull (vault);
  g_assert_nonnull (recovery);
  g_assert_cmpuint (strlen (recovery), >=, 52);
  g_assert_nonnull (relais_vault_get_device_id (vault));
  write_markers (vault, "MARKER", 100);
  relais_vault_close (vault);

  /* A clean close leaves the WAL checkpointed. */
  g_assert_false (g_file_test (wal, G_FILE_TEST_EXISTS));

  vault = relais_vault_create (fx->dir, "other", &fx->options, NULL, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_EXISTS);
  g_assert_null (vault);
  g_clear_error (&error);

  vault = relais_vault_open (fx->dir, "wrong horse", NULL, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_BAD_PASSPHRASE);
  g_assert_null (vault);
  g_clear_error (&error);

  vault = relais_vault_open (fx->dir, "correct horse", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (count_rows (vault), ==, 100);
  relais_vault_close (vault);

  vault = relais_vault_open_recovery (fx->dir, "AAAA-BBBB", NULL, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_BAD_PASSPHRASE);
  g_clear_error (&error);

  /* The recovery key as a person might type it back: lower case, no dashes. */
  {
    g_autofree char *typed = g_ascii_strdown (recovery, -1);
    g_autofree char *nodash = NULL;
    g_auto(GStrv) parts = g_strsplit (typed, "-", -1);

    nodash = g_strjoinv ("", parts);
    vault = relais_vault_open_recovery (fx->dir, nodash, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (count_rows (vault), ==, 100);
    relais_vault_close (vault);
  }
}

static void
test_no_vault (Fixture       *fx,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *missing = vault_file (fx, "nowhere");
  RelaisVault *vault;

  vault = relais_vault_open (missing, "x", NULL, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NO_VAULT);
  g_assert_null (vault);
  g_clear_error (&error);

  /* An empty directory is no vault either. */
  vault = relais_vault_open (fx->dir, "x", NULL, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_NO_VAULT);
  g_assert_null (vault);
}

static void
test_passphrase_change (Fixture       *fx,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *db = vault_file (fx, "vault.db");
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  gsize before_len, after_len;
  RelaisVault *vault;

  vault = relais_vault_create (fx->dir, "old", &fx->options, NULL, &error);
  g_assert_no_error (error);
  write_markers (vault, "ROW", 10);
  relais_vault_close (vault);
  g_assert_true (g_file_get_contents (db, &before, &before_len, NULL));

  vault = relais_vault_open (fx->dir, "old", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (relais_vault_change_passphrase (vault, "new", &error));
  g_assert_no_error (error);
  relais_vault_close (vault);

  /* Re-wrapping does not rewrite the database. */
  g_assert_true (g_file_get_contents (db, &after, &after_len, NULL));
  g_assert_cmpmem (before, before_len, after, after_len);

  vault = relais_vault_open (fx->dir, "old", NULL, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_BAD_PASSPHRASE);
  g_clear_error (&error);
  vault = relais_vault_open (fx->dir, "new", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (count_rows (vault), ==, 10);
  relais_vault_close (vault);
}

static void
test_no_plaintext (Fixture       *fx,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *db_path = vault_file (fx, "vault.db");
  RelaisVault *vault;
  sqlite3 *plain = NULL;
  guint files = 0;
  int rc;

  vault = relais_vault_create (fx->dir, "pass", &fx->options, NULL, &error);
  g_assert_no_error (error);
  /* Enough rows for overflow into many pages and a checkpoint. */
  g_assert_true (relais_vault_exec (vault, "PRAGMA wal_autocheckpoint = 50", &error));
  write_markers (vault, "ZORGLUB", 20000);
  g_assert_true (relais_vault_exec (vault, "CREATE INDEX t_v ON t (v)", &error));
  g_assert_no_error (error);

  /* While open: the WAL (or the journal) is there; look inside it too. */
  g_assert_true (relais_vault_begin (vault, &error));
  g_assert_true (relais_vault_exec (vault, "UPDATE t SET v = 'ZORGLUB-UPDATED' WHERE id % 7 = 0", &error));
  g_assert_no_error (error);
  g_assert_false (dir_contains (fx->dir, "ZORGLUB", &files));
  g_assert_true (relais_vault_commit (vault, &error));
  g_assert_false (dir_contains (fx->dir, "ZORGLUB", &files));
  g_assert_false (dir_contains (fx->dir, "SQLite format 3", &files));
  g_assert_cmpuint (files, >=, 4);
  relais_vault_close (vault);
  g_assert_false (dir_contains (fx->dir, "ZORGLUB", &files));
  g_assert_false (dir_contains (fx->dir, "SQLite format 3", &files));

  /* A plain SQLite cannot read it. */
  rc = sqlite3_open_v2 (db_path, &plain, SQLITE_OPEN_READONLY, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec (plain, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
  g_assert_cmpint (rc, ==, SQLITE_NOTADB);
  sqlite3_close (plain);

  vault = relais_vault_open (fx->dir, "pass", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (count_rows (vault), ==, 20000);
  relais_vault_close (vault);
}

static void
flip_bit (const char *path,
          gsize       offset,
          guint       bit)
{
  g_autofree char *contents = NULL;
  gsize len = 0;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpuint (offset, <, len);
  contents[offset] ^= (char) (1u << bit);
  g_assert_true (g_file_set_contents (path, contents, len, NULL));
}

static void
test_page_bit_flip (Fixture       *fx,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *db_path = vault_file (fx, "vault.db");
  g_autofree char *pristine = NULL;
  gsize len = 0;
  RelaisVault *vault;

  vault = relais_vault_create (fx->dir, "pass", &fx->options, NULL, &error);
  g_assert_no_error (error);
  write_markers (vault, "ROW", 2000);
  relais_vault_close (vault);
  g_assert_true (g_file_get_contents (db_path, &pristine, &len, NULL));
  g_assert_cmpuint (len % RELAIS_PAGE_SIZE, ==, 0);

  /* One bit anywhere in a page — content, nonce or tag — is caught. */
  for (guint round = 0; round < 24; round++)
    {
      gsize pages = len / RELAIS_PAGE_SIZE;
      gsize page = g_test_rand_int_range (0, (gint) pages);
      gsize within = round < 8 ? (gsize) g_test_rand_int_range (0, RELAIS_PAGE_SIZE)
                     : round < 16 ? RELAIS_PAGE_SIZE - RELAIS_RESERVE_BYTES + (gsize) g_test_rand_int_range (0, RELAIS_RESERVE_BYTES)
                     : (gsize) g_test_rand_int_range (0, 100);
      gboolean ok;
      guint pages_checked = 0;

      g_assert_true (g_file_set_contents (db_path, pristine, len, NULL));
      flip_bit (db_path, page * RELAIS_PAGE_SIZE + within, g_test_rand_int_range (0, 8));

      vault = relais_vault_open (fx->dir, "pass", NULL, &error);
      if (vault == NULL)
        {
          g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
          g_clear_error (&error);
          continue;
        }
      ok = relais_vault_verify (vault, &pages_checked, &error);
      g_assert_false (ok);
      g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
      g_assert_nonnull (strstr (error->message, "authentication"));
      g_clear_error (&error);
      relais_vault_close (vault);
    }

  /* The pristine copy verifies. */
  g_assert_true (g_file_set_contents (db_path, pristine, len, NULL));
  vault = relais_vault_open (fx->dir, "pass", NULL, &error);
  g_assert_no_error (error);
  {
    guint pages_checked = 0;
    gboolean ok = relais_vault_verify (vault, &pages_checked, &error);
    g_assert_no_error (error);
    g_assert_true (ok);
    g_assert_cmpuint (pages_checked, ==, len / RELAIS_PAGE_SIZE);
  }
  relais_vault_close (vault);
}

static void
test_page_swap (Fixture       *fx,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *db_path = vault_file (fx, "vault.db");
  g_autofree char *contents = NULL;
  gsize len = 0;
  RelaisVault *vault;
  guint8 tmp[RELAIS_PAGE_SIZE];

  vault = relais_vault_create (fx->dir, "pass", &fx->options, NULL, &error);
  g_assert_no_error (error);
  write_markers (vault, "ROW", 2000);
  relais_vault_close (vault);

  /* Two valid pages swapped: each is bound to its page number. */
  g_assert_true (g_file_get_contents (db_path, &contents, &len, NULL));
  g_assert_cmpuint (len / RELAIS_PAGE_SIZE, >=, 4);
  memcpy (tmp, contents + 2 * RELAIS_PAGE_SIZE, RELAIS_PAGE_SIZE);
  memcpy (contents + 2 * RELAIS_PAGE_SIZE, contents + 3 * RELAIS_PAGE_SIZE, RELAIS_PAGE_SIZE);
  memcpy (contents + 3 * RELAIS_PAGE_SIZE, tmp, RELAIS_PAGE_SIZE);
  g_assert_true (g_file_set_contents (db_path, contents, len, NULL));

  vault = relais_vault_open (fx->dir, "pass", NULL, &error);
  g_assert_no_error (error);
  g_assert_false (relais_vault_verify (vault, NULL, &error));
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
  relais_vault_close (vault);
}

static void
test_keyfile_bit_flip (Fixture       *fx,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key_path = vault_file (fx, "vault.key");
  g_autofree char *pristine = NULL;
  gsize len = 0;
  RelaisVault *vault;

  vault = relais_vault_create (fx->dir, "pass", &fx->options, NULL, &error);
  g_assert_no_error (error);
  relais_vault_close (vault);
  g_assert_true (g_file_get_contents (key_path, &pristine, &len, NULL));

  /* Every byte of the key file matters: a flip anywhere refuses to open. */
  for (gsize offset = 0; offset < len; offset++)
    {
      g_assert_true (g_file_set_contents (key_path, pristine, len, NULL));
      flip_bit (key_path, offset, offset % 8);
      vault = relais_vault_open (fx->dir, "pass", NULL, &error);
      /* Damage, not a wrong passphrase: the person must not be sent to
       * retype a passphrase that was right. */
      g_assert_null (vault);
      g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
      g_clear_error (&error);
    }

  /* Cut short. */
  g_assert_true (g_file_set_contents (key_path, pristine, len / 2, NULL));
  vault = relais_vault_open (fx->dir, "pass", NULL, &error);
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
  g_assert_null (vault);
}

static void
test_truncated_db (Fixture       *fx,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *db_path = vault_file (fx, "vault.db");
  g_autofree char *contents = NULL;
  gsize len = 0;
  RelaisVault *vault;

  vault = relais_vault_create (fx->dir, "pass", &fx->options, NULL, &error);
  g_assert_no_error (error);
  write_markers (vault, "ROW", 3000);
  relais_vault_close (vault);

  g_assert_true (g_file_get_contents (db_path, &contents, &len, NULL));
  g_assert_true (g_file_set_contents (db_path, contents, len - RELAIS_PAGE_SIZE - 100, NULL));
  vault = relais_vault_open (fx->dir, "pass", NULL, &error);
  if (vault != NULL)
    {
      g_assert_false (relais_vault_verify (vault, NULL, &error));
      relais_vault_close (vault);
    }
  g_assert_error (error, RELAIS_VAULT_ERROR, RELAIS_VAULT_ERROR_DAMAGED);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);

  g_test_add ("/vault/create-open", Fixture, NULL, fixture_setup, test_create_open, fixture_teardown);
  g_test_add ("/vault/no-vault", Fixture, NULL, fixture_setup, test_no_vault, fixture_teardown);
  g_test_add ("/vault/passphrase-change", Fixture, NULL, fixture_setup, test_passphrase_change, fixture_teardown);
  g_test_add ("/vault/no-plaintext/wal", Fixture, "WAL", fixture_setup, test_no_plaintext, fixture_teardown);
  g_test_add ("/vault/no-plaintext/journal", Fixture, "DELETE", fixture_setup, test_no_plaintext, fixture_teardown);
  g_test_add ("/vault/bit-flip/page", Fixture, NULL, fixture_setup, test_page_bit_flip, fixture_teardown);
  g_test_add ("/vault/bit-flip/key-file", Fixture, NULL, fixture_setup, test_keyfile_bit_flip, fixture_teardown);
  g_test_add ("/vault/page-swap", Fixture, NULL, fixture_setup, test_page_swap, fixture_teardown);
  g_test_add ("/vault/truncated", Fixture, NULL, fixture_setup, test_truncated_db, fixture_teardown);

  return g_test_run ();
}
