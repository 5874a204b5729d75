#define G_LOG_DOMAIN "relais-server"

#include "config.h"

#include "relais-server-api.h"

#include <json-glib/json-glib.h>
#include <sodium.h>
#include <string.h>

#include "relais-changeset.h"
#include "relais-oplog.h"

/* ---- Errors ---------------------------------------------------------- */

G_DEFINE_QUARK (relais-server-error-quark, relais_server_error)

static const struct {
  guint       status;
  const char *code;
} error_table[] = {
  [RELAIS_SERVER_ERROR_MALFORMED]       = { 400, "malformed" },
  [RELAIS_SERVER_ERROR_BAD_BASE64]      = { 400, "bad_base64" },
  [RELAIS_SERVER_ERROR_BAD_SIGNATURE]   = { 401, "bad_signature" },
  [RELAIS_SERVER_ERROR_STALE_REQUEST]   = { 401, "stale_request" },
  [RELAIS_SERVER_ERROR_UNKNOWN_DEVICE]  = { 401, "unknown_device" },
  [RELAIS_SERVER_ERROR_DEVICE_REVOKED]  = { 403, "device_revoked" },
  [RELAIS_SERVER_ERROR_NOT_MEMBER]      = { 403, "not_member" },
  [RELAIS_SERVER_ERROR_NOT_ADMIN]       = { 403, "not_admin" },
  [RELAIS_SERVER_ERROR_AUTHOR_MISMATCH] = { 403, "author_mismatch" },
  [RELAIS_SERVER_ERROR_NOT_FOUND]       = { 404, "not_found" },
  [RELAIS_SERVER_ERROR_METHOD]          = { 405, "not_found" },
  [RELAIS_SERVER_ERROR_REPLAYED]        = { 409, "replayed" },
  [RELAIS_SERVER_ERROR_ID_CONFLICT]     = { 409, "id_conflict" },
  [RELAIS_SERVER_ERROR_EPOCH_RETIRED]   = { 409, "epoch_retired" },
  [RELAIS_SERVER_ERROR_CODE_USED]       = { 409, "code_used" },
  [RELAIS_SERVER_ERROR_CODE_EXPIRED]    = { 410, "code_expired" },
  [RELAIS_SERVER_ERROR_TOO_LARGE]       = { 413, "too_large" },
  [RELAIS_SERVER_ERROR_SLOW_DOWN]       = { 429, "slow_down" },
  [RELAIS_SERVER_ERROR_INTERNAL]        = { 500, "internal" },
  [RELAIS_SERVER_ERROR_UNAVAILABLE]     = { 503, "unavailable" },
};

guint
relais_server_error_status (RelaisServerError code)
{
  if ((guint) code >= G_N_ELEMENTS (error_table))
    return 500;
  return error_table[code].status;
}

const char *
relais_server_error_code (RelaisServerError code)
{
  if ((guint) code >= G_N_ELEMENTS (error_table))
    return "internal";
  return error_table[code].code;
}

/* The store's errors, as the client sees them.  The store's own message is
 * never passed on: a database's text is for the operator, not the wire. */
static void
propagate_store_error (GError **dest, GError *src)
{
  RelaisServerError code = RELAIS_SERVER_ERROR_INTERNAL;
  const char *message = "The server failed to answer.";

  if (src->domain == RELAIS_STORE_ERROR)
    switch ((RelaisStoreError) src->code)
      {
      case RELAIS_STORE_ERROR_FAILED:
        code = RELAIS_SERVER_ERROR_UNAVAILABLE;
        message = "The server's database failed; try again later.";
        break;
      case RELAIS_STORE_ERROR_NOT_FOUND:
        code = RELAIS_SERVER_ERROR_NOT_FOUND;
        message = "Nothing is known under that id.";
        break;
      case RELAIS_STORE_ERROR_EXISTS:
        code = RELAIS_SERVER_ERROR_ID_CONFLICT;
        message = "That id is already taken.";
        break;
      case RELAIS_STORE_ERROR_CODE_USED:
        code = RELAIS_SERVER_ERROR_CODE_USED;
        message = "This enrolment code has already been used.";
        break;
      case RELAIS_STORE_ERROR_CODE_EXPIRED:
        code = RELAIS_SERVER_ERROR_CODE_EXPIRED;
        message = "This enrolment code has expired; ask an administrator for a new one.";
        break;
      case RELAIS_STORE_ERROR_REPLAYED:
        code = RELAIS_SERVER_ERROR_REPLAYED;
        message = "This request was already received.";
        break;
      case RELAIS_STORE_ERROR_KEYS_SET:
        code = RELAIS_SERVER_ERROR_ID_CONFLICT;
        message = "This user's keys are already set to other public keys.";
        break;
      case RELAIS_STORE_ERROR_NOT_MEMBER:
        code = RELAIS_SERVER_ERROR_NOT_MEMBER;
        message = "The user is not a member of this dossier.";
        break;
      case RELAIS_STORE_ERROR_EPOCH_RETIRED:
        code = RELAIS_SERVER_ERROR_EPOCH_RETIRED;
        message = "That key epoch is not the dossier's current one.";
        break;
      case RELAIS_STORE_ERROR_ID_CONFLICT:
        code = RELAIS_SERVER_ERROR_ID_CONFLICT;
        message = "Another change set is stored under that id.";
        break;
      case RELAIS_STORE_ERROR_URI:
        break;
      }
  if (code == RELAIS_SERVER_ERROR_UNAVAILABLE || code == RELAIS_SERVER_ERROR_INTERNAL)
    g_warning ("store: %s", src->message);
  g_set_error_literal (dest, RELAIS_SERVER_ERROR, code, message);
  g_error_free (src);
}

/* ---- Ids and enrolment codes ---------------------------------------- */

gboolean
relais_server_id_is_valid (const char *id)
{
  gsize len;

  if (id == NULL)
    return FALSE;
  len = strlen (id);
  if (len == 0 || len > RELAIS_CHANGESET_MAX_ID_LEN)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (id[i]) && id[i] != '-' && id[i] != '_')
      return FALSE;
  return TRUE;
}

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

char *
relais_server_code_new (void)
{
  GString *code = g_string_sized_new (RELAIS_SERVER_CODE_LENGTH + 4);

  for (guint i = 0; i < RELAIS_SERVER_CODE_LENGTH; i++)
    {
      if (i > 0 && i % 5 == 0)
        g_string_append_c (code, '-');
      g_string_append_c (code, crockford[randombytes_uniform (32)]);
    }
  return g_string_free (code, FALSE);
}

char *
relais_server_code_normalize (const char *code)
{
  char out[RELAIS_SERVER_CODE_LENGTH + 1];
  guint n = 0;

  if (code == NULL || strlen (code) > 4 * RELAIS_SERVER_CODE_LENGTH)
    return NULL;
  for (const char *p = code; *p != '\0'; p++)
    {
      char c = g_ascii_toupper (*p);

      if (c == '-' || c == ' ')
        continue;
      /* Crockford's aliases: what a person reads off paper. */
      if (c == 'O')
        c = '0';
      else if (c == 'I' || c == 'L')
        c = '1';
      if (strchr (crockford, c) == NULL || c == '\0' || n == RELAIS_SERVER_CODE_LENGTH)
        return NULL;
      out[n++] = c;
    }
  if (n != RELAIS_SERVER_CODE_LENGTH)
    return NULL;
  out[n] = '\0';
  return g_strdup (out);
}

gboolean
relais_server_code_hash (const char *code,
                         guint8      out_hash[RELAIS_STORE_HASH_SIZE])
{
  static const char domain[] = "relais-enrolment-code-v1\n";
  g_autofree char *canonical = relais_server_code_normalize (code);
  crypto_generichash_state state;

  if (canonical == NULL)
    return FALSE;
  crypto_generichash_init (&state, NULL, 0, RELAIS_STORE_HASH_SIZE);
  crypto_generichash_update (&state, (const guint8 *) domain, strlen (domain));
  crypto_generichash_update (&state, (const guint8 *) canonical, strlen (canonical));
  crypto_generichash_final (&state, out_hash, RELAIS_STORE_HASH_SIZE);
  sodium_memzero (canonical, strlen (canonical));
  return TRUE;
}

/* ---- Cursors --------------------------------------------------------- */

#define CURSOR_SIZE (8 + 8 + RELAIS_SERVER_CURSOR_MAC_SIZE)

static void
put_u64 (guint8 *p, guint64 v)
{
  for (guint i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
}

static guint64
get_u64 (const guint8 *p)
{
  guint64 v = 0;

  for (guint i = 0; i < 8; i++)
    v |= (guint64) p[i] << (8 * i);
  return v;
}

static void
cursor_mac (const guint8 *secret, const guint8 *data, guint8 *out_mac)
{
  crypto_generichash (out_mac, RELAIS_SERVER_CURSOR_MAC_SIZE, data, 16, secret, 32);
}

char *
relais_server_cursor_encode (const guint8            *secret,
                             const RelaisStoreCursor *cursor)
{
  guint8 raw[CURSOR_SIZE];

  put_u64 (raw, cursor->vis);
  put_u64 (raw + 8, cursor->seq);
  cursor_mac (secret, raw, raw + 16);
  return relais_sync_base64_encode (raw, sizeof raw);
}

gboolean
relais_server_cursor_decode (const guint8       *secret,
                             const char         *text,
                             RelaisStoreCursor  *out_cursor,
                             GError            **error)
{
  g_autofree guint8 *raw = NULL;
  guint8 mac[RELAIS_SERVER_CURSOR_MAC_SIZE];
  gsize len = 0;

  if (text != NULL && strlen (text) <= 64)
    raw = relais_sync_base64_decode (text, CURSOR_SIZE, &len, NULL);
  if (raw == NULL || len != CURSOR_SIZE)
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                           "The pull cursor is not one this server gave.");
      return FALSE;
    }
  cursor_mac (secret, raw, mac);
  if (sodium_memcmp (mac, raw + 16, sizeof mac) != 0 || get_u64 (raw + 8) > get_u64 (raw))
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                           "The pull cursor is not one this server gave.");
      return FALSE;
    }
  out_cursor->vis = get_u64 (raw);
  out_cursor->seq = get_u64 (raw + 8);
  return TRUE;
}

/* ---- JSON in --------------------------------------------------------- */

/* Our bodies are at most four levels deep and hold at most a few thousand
 * values, but json-glib recurses per level and allocates per value: a body
 * of 110 MiB of '[' or of "1," would blow the stack or the memory before it
 * said no.  One pass over the bytes refuses those first. */
#define JSON_MAX_DEPTH  16
#define JSON_MAX_TOKENS 100000

static gboolean
json_prescan (const char *body, gsize len, GError **error)
{
  guint depth = 0;
  gsize tokens = 0;
  gboolean in_string = FALSE;

  if (len == 0)
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                           "The request has no body.");
      return FALSE;
    }
  if (memchr (body, '\0', len) != NULL || !g_utf8_validate_len (body, len, NULL))
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                           "The request body is not UTF-8 text.");
      return FALSE;
    }
  for (gsize i = 0; i < len; i++)
    {
      char c = body[i];

      if (in_string)
        {
          /* json-glib would cut a string at an escaped NUL, silently: a
           * name "a\u0000b" would become "a". */
          if (c == '\\' && i + 5 < len && body[i + 1] == 'u'
              && memcmp (body + i + 2, "0000", 4) == 0)
            {
              g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                                   "The request body holds a NUL character.");
              return FALSE;
            }
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
          continue;
        }
      switch (c)
        {
        case '"':
          in_string = TRUE;
          tokens++;
          break;
        case '[':
        case '{':
          if (++depth > JSON_MAX_DEPTH)
            {
              g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                                   "The request body is nested too deeply.");
              return FALSE;
            }
          tokens++;
          break;
        case ']':
        case '}':
          if (depth > 0)
            depth--;
          break;
        case ',':
        case ':':
          tokens++;
          break;
        default:
          break;
        }
      if (tokens > JSON_MAX_TOKENS)
        {
          g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_TOO_LARGE,
                               "The request body holds too many values.");
          return FALSE;
        }
    }
  return TRUE;
}

/* Parses @body as one JSON object; the parser owns the tree. */
static JsonObject *
parse_object (const char *body, gsize len, JsonParser **out_parser, GError **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local = NULL;
  JsonNode *root;

  if (!json_prescan (body, len, error))
    return NULL;
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, body, len, &local))
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                           "The request body is not valid JSON.");
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                           "The request body is not a JSON object.");
      return NULL;
    }
  *out_parser = g_steal_pointer (&parser);
  return json_node_get_object (root);
}

static gboolean
field_error (GError **error, const char *name, const char *what)
{
  g_set_error (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
               "The field \"%s\" %s.", name, what);
  return FALSE;
}

/* @out is NULL when the member is absent or null and not @required. */
static gboolean
get_string (JsonObject *object, const char *name, gboolean required,
            const char **out, GError **error)
{
  JsonNode *node = json_object_get_member (object, name);

  *out = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return required ? field_error (error, name, "is missing") : TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return field_error (error, name, "must be a string");
  *out = json_node_get_string (node);
  return TRUE;
}

static gboolean
get_id (JsonObject *object, const char *name, char **out, GError **error)
{
  const char *text;

  if (!get_string (object, name, TRUE, &text, error))
    return FALSE;
  if (!relais_server_id_is_valid (text))
    return field_error (error, name, "is not a valid id");
  *out = g_strdup (text);
  return TRUE;
}

/* A name or organisation: printable UTF-8 of sensible length. */
static gboolean
get_text (JsonObject *object, const char *name, gsize max_len, char **out, GError **error)
{
  const char *text;
  gsize len;

  if (!get_string (object, name, TRUE, &text, error))
    return FALSE;
  len = strlen (text);
  if (len == 0 || len > max_len)
    return field_error (error, name, "is empty or too long");
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_iscntrl (c))
        return field_error (error, name, "holds control characters");
    }
  *out = g_strdup (text);
  return TRUE;
}

static gboolean
get_uint32 (JsonObject *object, const char *name, guint32 min, guint32 *out, GError **error)
{
  JsonNode *node = json_object_get_member (object, name);
  gint64 value;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return field_error (error, name, "is missing");
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return field_error (error, name, "must be an integer");
  value = json_node_get_int (node);
  if (value < (gint64) min || value > G_MAXUINT32)
    return field_error (error, name, "is out of range");
  *out = (guint32) value;
  return TRUE;
}

/* base64url of @min_len to @max_len bytes; *@out NULL when absent and not
 * @required. */
static gboolean
get_base64 (JsonObject *object, const char *name, gboolean required,
            gsize min_len, gsize max_len, GBytes **out, GError **error)
{
  const char *text;
  guint8 *data;
  gsize len = 0;

  *out = NULL;
  if (!get_string (object, name, required, &text, error))
    return FALSE;
  if (text == NULL)
    return TRUE;
  data = relais_sync_base64_decode (text, max_len, &len, NULL);
  if (data == NULL)
    {
      /* Longer than allowed is a length error, not an alphabet error. */
      if (strlen (text) / 4 * 3 > max_len)
        return field_error (error, name, "is too long");
      g_set_error (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_BAD_BASE64,
                   "The field \"%s\" is not valid base64url.", name);
      return FALSE;
    }
  if (len < min_len)
    {
      g_free (data);
      return field_error (error, name, "is too short");
    }
  *out = g_bytes_new_take (data, len);
  return TRUE;
}

static gboolean
get_key (JsonObject *object, const char *name, guint8 *out, GError **error)
{
  g_autoptr(GBytes) bytes = NULL;

  if (!get_base64 (object, name, TRUE, RELAIS_STORE_KEY_SIZE, RELAIS_STORE_KEY_SIZE, &bytes, error))
    return FALSE;
  memcpy (out, g_bytes_get_data (bytes, NULL), RELAIS_STORE_KEY_SIZE);
  return TRUE;
}

static gboolean
get_array (JsonObject *object, const char *name, guint max_len, JsonArray **out, GError **error)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return field_error (error, name, "is missing");
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return field_error (error, name, "must be an array");
  *out = json_node_get_array (node);
  if (json_array_get_length (*out) > max_len)
    {
      g_set_error (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_TOO_LARGE,
                   "The field \"%s\" has too many elements.", name);
      return FALSE;
    }
  return TRUE;
}

static JsonObject *
array_object (JsonArray *array, guint i, const char *name, GError **error)
{
  JsonNode *node = json_array_get_element (array, i);

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      field_error (error, name, "must hold objects");
      return NULL;
    }
  return json_node_get_object (node);
}

/* Wrapped dossier keys are 154 bytes today (PROTOCOL.md §2.1); the server
 * never opens them, so it only bounds them. */
#define WRAP_MIN 48
#define WRAP_MAX 1024
#define MAX_MEMBERS 1000
#define MAX_EPOCHS 100000
/* The passphrase-wrapped key pair is 208 bytes (§2.2). */
#define USER_KEYS_MIN 64
#define USER_KEYS_MAX 4096
#define TEXT_MAX 200

static RelaisStoreWrappedKey *
wrapped_key_new (const char *user_id, guint32 epoch, GBytes *wrapped)
{
  RelaisStoreWrappedKey *key = g_new0 (RelaisStoreWrappedKey, 1);

  key->user_id = g_strdup (user_id);
  key->epoch = epoch;
  key->wrapped_key = g_bytes_ref (wrapped);
  return key;
}

/* [{"user_id","wrapped_key"}] at @epoch, no user twice. */
static gboolean
parse_members (JsonObject *object, guint32 epoch, guint min, GPtrArray *keys, GError **error)
{
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  JsonArray *members;

  if (!get_array (object, "members", MAX_MEMBERS, &members, error))
    return FALSE;
  if (json_array_get_length (members) < min)
    return field_error (error, "members", "is empty");
  for (guint i = 0; i < json_array_get_length (members); i++)
    {
      JsonObject *member = array_object (members, i, "members", error);
      g_autofree char *user_id = NULL;
      g_autoptr(GBytes) wrapped = NULL;

      if (member == NULL
          || !get_id (member, "user_id", &user_id, error)
          || !get_base64 (member, "wrapped_key", TRUE, WRAP_MIN, WRAP_MAX, &wrapped, error))
        return FALSE;
      if (g_hash_table_contains (seen, user_id))
        return field_error (error, "members", "names a user twice");
      g_ptr_array_add (keys, wrapped_key_new (user_id, epoch, wrapped));
      g_hash_table_add (seen, g_steal_pointer (&user_id));
    }
  return TRUE;
}

static gboolean
parse_recovery_wrap (JsonObject *object, guint32 epoch, GPtrArray *keys, GError **error)
{
  g_autoptr(GBytes) wrapped = NULL;

  if (!get_base64 (object, "recovery_wrapped_key", FALSE, WRAP_MIN, WRAP_MAX, &wrapped, error))
    return FALSE;
  if (wrapped != NULL)
    g_ptr_array_add (keys, wrapped_key_new (NULL, epoch, wrapped));
  return TRUE;
}

void
relais_enrol_request_free (RelaisEnrolRequest *request)
{
  if (request == NULL)
    return;
  if (request->code != NULL)
    sodium_memzero (request->code, strlen (request->code));
  g_free (request->code);
  g_free (request->device_name);
  g_free (request);
}

RelaisEnrolRequest *
relais_server_parse_enrol (const char  *body,
                           gsize        len,
                           GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisEnrolRequest) request = g_new0 (RelaisEnrolRequest, 1);
  JsonObject *object = parse_object (body, len, &parser, error);
  const char *code;

  if (object == NULL
      || !get_string (object, "code", TRUE, &code, error))
    return NULL;
  request->code = relais_server_code_normalize (code);
  if (request->code == NULL)
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                           "An enrolment code has 20 letters and digits.");
      return NULL;
    }
  if (!get_text (object, "device_name", TEXT_MAX, &request->device_name, error)
      || !get_key (object, "device_key", request->device_key, error))
    return NULL;
  return g_steal_pointer (&request);
}

void
relais_keys_request_free (RelaisKeysRequest *request)
{
  if (request == NULL)
    return;
  g_clear_pointer (&request->wrapped_user_keys, g_bytes_unref);
  g_free (request);
}

RelaisKeysRequest *
relais_server_parse_keys (const char  *body,
                          gsize        len,
                          GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisKeysRequest) request = g_new0 (RelaisKeysRequest, 1);
  JsonObject *object = parse_object (body, len, &parser, error);

  if (object == NULL
      || !get_key (object, "box_pk", request->box_pk, error)
      || !get_key (object, "sign_pk", request->sign_pk, error)
      || !get_base64 (object, "wrapped_user_keys", TRUE, USER_KEYS_MIN, USER_KEYS_MAX,
                      &request->wrapped_user_keys, error))
    return NULL;
  return g_steal_pointer (&request);
}

void
relais_dossier_request_free (RelaisDossierRequest *request)
{
  if (request == NULL)
    return;
  g_free (request->dossier_id);
  g_free (request->user_id);
  g_clear_pointer (&request->keys, g_ptr_array_unref);
  g_free (request);
}

static RelaisDossierRequest *
dossier_request_new (void)
{
  RelaisDossierRequest *request = g_new0 (RelaisDossierRequest, 1);

  request->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
  return request;
}

RelaisDossierRequest *
relais_server_parse_dossier (const char  *body,
                             gsize        len,
                             GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisDossierRequest) request = dossier_request_new ();
  JsonObject *object = parse_object (body, len, &parser, error);

  if (object == NULL
      || !get_id (object, "dossier_id", &request->dossier_id, error)
      || !get_uint32 (object, "epoch", 1, &request->epoch, error))
    return NULL;
  if (request->epoch != 1)
    {
      field_error (error, "epoch", "must be 1 for a new dossier");
      return NULL;
    }
  if (!parse_members (object, 1, 1, request->keys, error)
      || !parse_recovery_wrap (object, 1, request->keys, error))
    return NULL;
  return g_steal_pointer (&request);
}

RelaisDossierRequest *
relais_server_parse_unshare (const char  *body,
                             gsize        len,
                             GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisDossierRequest) request = dossier_request_new ();
  JsonObject *object = parse_object (body, len, &parser, error);

  /* Epoch 1 is every dossier's first: a rotation makes 2 or more. */
  if (object == NULL
      || !get_id (object, "user_id", &request->user_id, error)
      || !get_uint32 (object, "epoch", 2, &request->epoch, error)
      || !parse_members (object, request->epoch, 0, request->keys, error)
      || !parse_recovery_wrap (object, request->epoch, request->keys, error))
    return NULL;
  return g_steal_pointer (&request);
}

void
relais_share_request_free (RelaisShareRequest *request)
{
  if (request == NULL)
    return;
  g_free (request->user_id);
  g_clear_pointer (&request->keys, g_ptr_array_unref);
  g_free (request);
}

RelaisShareRequest *
relais_server_parse_share (const char  *body,
                           gsize        len,
                           GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisShareRequest) request = g_new0 (RelaisShareRequest, 1);
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  JsonObject *object = parse_object (body, len, &parser, error);
  JsonArray *keys;

  request->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
  if (object == NULL
      || !get_id (object, "user_id", &request->user_id, error)
      || !get_array (object, "wrapped_keys", MAX_EPOCHS, &keys, error))
    return NULL;
  if (json_array_get_length (keys) == 0)
    {
      field_error (error, "wrapped_keys", "is empty");
      return NULL;
    }
  for (guint i = 0; i < json_array_get_length (keys); i++)
    {
      JsonObject *key = array_object (keys, i, "wrapped_keys", error);
      g_autoptr(GBytes) wrapped = NULL;
      guint32 epoch;

      if (key == NULL
          || !get_uint32 (key, "epoch", 1, &epoch, error)
          || !get_base64 (key, "wrapped_key", TRUE, WRAP_MIN, WRAP_MAX, &wrapped, error))
        return NULL;
      if (g_hash_table_contains (seen, GUINT_TO_POINTER (epoch)))
        {
          field_error (error, "wrapped_keys", "names an epoch twice");
          return NULL;
        }
      g_hash_table_add (seen, GUINT_TO_POINTER (epoch));
      g_ptr_array_add (request->keys, wrapped_key_new (request->user_id, epoch, wrapped));
    }
  return g_steal_pointer (&request);
}

void
relais_push_request_free (RelaisPushRequest *request)
{
  if (request == NULL)
    return;
  g_clear_pointer (&request->envelopes, g_ptr_array_unref);
  g_free (request);
}

RelaisPushRequest *
relais_server_parse_push (const char  *body,
                          gsize        len,
                          GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisPushRequest) request = g_new0 (RelaisPushRequest, 1);
  JsonObject *object = parse_object (body, len, &parser, error);
  JsonArray *changesets;

  request->envelopes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  if (object == NULL
      || !get_array (object, "changesets", RELAIS_SERVER_MAX_PUSH, &changesets, error))
    return NULL;
  for (guint i = 0; i < json_array_get_length (changesets); i++)
    {
      JsonNode *node = json_array_get_element (changesets, i);
      guint8 *data;
      gsize data_len = 0;

      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
        {
          field_error (error, "changesets", "must hold strings");
          return NULL;
        }
      /* Each envelope is judged on its own (PROTOCOL.md §5.2): one that is
       * not base64url is refused in its result, not the whole push.  An
       * oversized one decodes here and is refused by its header's check. */
      data = relais_sync_base64_decode (json_node_get_string (node), RELAIS_SERVER_MAX_BODY,
                                        &data_len, NULL);
      g_ptr_array_add (request->envelopes,
                       data != NULL ? g_bytes_new_take (data, data_len) : NULL);
    }
  return g_steal_pointer (&request);
}

void
relais_recovery_key_request_free (RelaisRecoveryKeyRequest *request)
{
  if (request == NULL)
    return;
  g_free (request->org);
  g_free (request);
}

RelaisRecoveryKeyRequest *
relais_server_parse_recovery_key (const char  *body,
                                  gsize        len,
                                  GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisRecoveryKeyRequest) request = g_new0 (RelaisRecoveryKeyRequest, 1);
  JsonObject *object = parse_object (body, len, &parser, error);

  if (object == NULL
      || !get_text (object, "org", TEXT_MAX, &request->org, error)
      || !get_key (object, "box_pk", request->box_pk, error))
    return NULL;
  return g_steal_pointer (&request);
}

void
relais_recovery_add_request_free (RelaisRecoveryAddRequest *request)
{
  if (request == NULL)
    return;
  g_free (request->org);
  g_clear_pointer (&request->keys, g_ptr_array_unref);
  g_free (request);
}

/* A wrapped dossier key is exactly 154 bytes (PROTOCOL.md §2.1): the
 * server cannot open a recovery wrap, but it can refuse what cannot be
 * one. */
#define RECOVERY_WRAP_SIZE 154

RelaisRecoveryAddRequest *
relais_server_parse_recovery_add (const char  *body,
                                  gsize        len,
                                  GError     **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(RelaisRecoveryAddRequest) request = g_new0 (RelaisRecoveryAddRequest, 1);
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);
  JsonObject *object = parse_object (body, len, &parser, error);
  JsonArray *keys;

  request->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_store_wrapped_key_free);
  if (object == NULL
      || !get_text (object, "org", TEXT_MAX, &request->org, error)
      || !get_array (object, "wrapped_keys", MAX_EPOCHS, &keys, error))
    return NULL;
  if (json_array_get_length (keys) == 0)
    {
      field_error (error, "wrapped_keys", "is empty");
      return NULL;
    }
  for (guint i = 0; i < json_array_get_length (keys); i++)
    {
      JsonObject *key = array_object (keys, i, "wrapped_keys", error);
      g_autoptr(GBytes) wrapped = NULL;
      RelaisStoreWrappedKey *wrap;
      guint32 epoch;

      if (key == NULL
          || !get_uint32 (key, "epoch", 1, &epoch, error)
          || !get_base64 (key, "wrapped_key", TRUE, RECOVERY_WRAP_SIZE, RECOVERY_WRAP_SIZE,
                          &wrapped, error))
        return NULL;
      if (g_hash_table_contains (seen, GUINT_TO_POINTER (epoch)))
        {
          field_error (error, "wrapped_keys", "names an epoch twice");
          return NULL;
        }
      g_hash_table_add (seen, GUINT_TO_POINTER (epoch));
      wrap = wrapped_key_new (NULL, epoch, wrapped);
      wrap->org = g_strdup (request->org);
      g_ptr_array_add (request->keys, wrap);
    }
  return g_steal_pointer (&request);
}

#define QUERY_MAX_PARAMS 8

GHashTable *
relais_server_parse_query (const char  *query,
                           GError     **error)
{
  g_autoptr(GHashTable) params = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto(GStrv) parts = NULL;

  if (query == NULL || *query == '\0')
    return g_steal_pointer (&params);
  if (strlen (query) > 4096)
    goto malformed;
  parts = g_strsplit (query, "&", QUERY_MAX_PARAMS + 1);
  if (g_strv_length (parts) > QUERY_MAX_PARAMS)
    goto malformed;
  for (guint i = 0; parts[i] != NULL; i++)
    {
      char *eq;
      g_autofree char *name = NULL;
      g_autofree char *value = NULL;

      if (*parts[i] == '\0')
        continue;
      g_strdelimit (parts[i], "+", ' ');
      eq = strchr (parts[i], '=');
      if (eq != NULL)
        *eq = '\0';
      name = g_uri_unescape_string (parts[i], NULL);
      value = g_uri_unescape_string (eq != NULL ? eq + 1 : "", NULL);
      if (name == NULL || value == NULL || *name == '\0'
          || !g_utf8_validate (name, -1, NULL) || !g_utf8_validate (value, -1, NULL)
          || g_hash_table_contains (params, name))
        goto malformed;
      g_hash_table_insert (params, g_steal_pointer (&name), g_steal_pointer (&value));
    }
  return g_steal_pointer (&params);

malformed:
  g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_MALFORMED,
                       "The query string is not well-formed.");
  return NULL;
}

/* ---- JSON out -------------------------------------------------------- */

static void
respond_json (RelaisServerResponse *response, guint status, JsonBuilder *builder)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (builder);

  json_generator_set_root (generator, root);
  response->status = status;
  g_free (response->body);
  response->body = json_generator_to_data (generator, &response->body_len);
}

static void
respond_empty (RelaisServerResponse *response, guint status)
{
  response->status = status;
  g_clear_pointer (&response->body, g_free);
  response->body_len = 0;
}

static void
add_base64 (JsonBuilder *builder, const char *name, const void *data, gsize len)
{
  g_autofree char *text = relais_sync_base64_encode (data, len);

  if (name != NULL)
    json_builder_set_member_name (builder, name);
  json_builder_add_string_value (builder, text);
}

static void
add_base64_bytes (JsonBuilder *builder, const char *name, GBytes *bytes)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  add_base64 (builder, name, data, len);
}

void
relais_server_response_clear (RelaisServerResponse *response)
{
  g_clear_pointer (&response->body, g_free);
  response->body_len = 0;
}

static void
set_error_full (RelaisServerResponse *response, const GError *error, gint64 server_time)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  RelaisServerError code = RELAIS_SERVER_ERROR_INTERNAL;
  const char *message = "The server failed to answer.";

  if (error != NULL && error->domain == RELAIS_SERVER_ERROR)
    {
      code = error->code;
      message = error->message;
    }
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "error");
  json_builder_add_string_value (builder, relais_server_error_code (code));
  json_builder_set_member_name (builder, "message");
  json_builder_add_string_value (builder, message);
  if (code == RELAIS_SERVER_ERROR_STALE_REQUEST)
    {
      json_builder_set_member_name (builder, "server_time");
      json_builder_add_int_value (builder, server_time);
    }
  json_builder_end_object (builder);
  respond_json (response, relais_server_error_status (code), builder);
  response->error_code = relais_server_error_code (code);
  if (code == RELAIS_SERVER_ERROR_UNAVAILABLE)
    response->retry_after = 5;
  else if (code == RELAIS_SERVER_ERROR_SLOW_DOWN)
    response->retry_after = 10;
}

void
relais_server_response_set_error (RelaisServerResponse *response,
                                  const GError         *error)
{
  set_error_full (response, error, g_get_real_time () / G_USEC_PER_SEC);
}

/* ---- The API --------------------------------------------------------- */

struct _RelaisServerApi {
  RelaisStore *store;
  guint8      *secret;   /* 32 bytes, sodium_malloc */
  gboolean     serialize_writes;
  GMutex       write_lock;
};

void
relais_server_api_set_serialize_writes (RelaisServerApi *api,
                                        gboolean         serialize)
{
  api->serialize_writes = serialize;
}

/* Around every store call that writes.  SQLite has one writer at a time
 * and makes the others wait by sleeping (1, 2, 5, … 100 ms), so under
 * load the unlucky ones sleep far longer than the lock is held: queued on
 * a mutex here, they take it the moment it is free. */
static void
write_begin (RelaisServerApi *api)
{
  if (api->serialize_writes)
    g_mutex_lock (&api->write_lock);
}

static void
write_end (RelaisServerApi *api)
{
  if (api->serialize_writes)
    g_mutex_unlock (&api->write_lock);
}

RelaisServerApi *
relais_server_api_new (RelaisStore  *store,
                       GError      **error)
{
  g_autoptr(RelaisServerApi) api = g_new0 (RelaisServerApi, 1);

  api->store = store;
  g_mutex_init (&api->write_lock);
  api->secret = sodium_malloc (32);
  if (api->secret == NULL)
    {
      g_set_error_literal (error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_INTERNAL,
                           "Out of guarded memory.");
      return NULL;
    }
  if (!relais_store_get_secret (store, api->secret, error))
    return NULL;
  return g_steal_pointer (&api);
}

void
relais_server_api_free (RelaisServerApi *api)
{
  if (api == NULL)
    return;
  if (api->secret != NULL)
    sodium_free (api->secret);
  g_mutex_clear (&api->write_lock);
  g_free (api);
}

/* A store call that writes, under the write lock (GNU C: the project
 * builds as gnu11). */
#define WRITE(expr) \
  ({ write_begin (call->api); __auto_type write_result_ = (expr); write_end (call->api); write_result_; })

/* One request being answered. */
typedef struct {
  RelaisServerApi           *api;
  const RelaisServerRequest *request;
  const char                *query;    /* after '?', or NULL */
  char                      *id;       /* the route's {id}, or NULL */
  gint64                     now;
  RelaisStoreDevice         *device;   /* the signing device and its user */
  RelaisStoreUser           *user;
} Call;

static gboolean
fail (GError **error, RelaisServerError code, const char *message)
{
  g_set_error_literal (error, RELAIS_SERVER_ERROR, code, message);
  return FALSE;
}

/* PROTOCOL.md §5.1.  Cheap checks first, then the signature, and only then
 * anything that writes (the nonce, last seen): a forged or stale request
 * changes nothing. */
static gboolean
authenticate (Call *call, GError **error)
{
  const RelaisServerRequest *request = call->request;
  RelaisStore *store = call->api->store;
  g_autofree guint8 *nonce = NULL;
  g_autofree guint8 *signature = NULL;
  g_autoptr(RelaisStoreDevice) device = NULL;
  g_autoptr(GString) message = NULL;
  guint8 body_hash[crypto_hash_sha256_BYTES];
  char body_hex[2 * crypto_hash_sha256_BYTES + 1];
  GError *local = NULL;
  gsize len = 0;
  gint64 time;

  if (request->device == NULL || request->time == NULL
      || request->nonce == NULL || request->signature == NULL)
    return fail (error, RELAIS_SERVER_ERROR_BAD_SIGNATURE, "The request is not signed.");
  if (!relais_server_id_is_valid (request->device))
    return fail (error, RELAIS_SERVER_ERROR_UNKNOWN_DEVICE, "This device is not enrolled.");
  if (!g_ascii_string_to_signed (request->time, 10, 0, G_MAXINT64, &time, NULL))
    return fail (error, RELAIS_SERVER_ERROR_BAD_SIGNATURE, "The request's time is not a number.");
  if (strlen (request->nonce) <= 64)
    nonce = relais_sync_base64_decode (request->nonce, RELAIS_SERVER_NONCE_SIZE, &len, NULL);
  if (nonce == NULL || len != RELAIS_SERVER_NONCE_SIZE)
    return fail (error, RELAIS_SERVER_ERROR_BAD_SIGNATURE, "The request's nonce is not 16 bytes of base64url.");
  if (strlen (request->signature) <= 128)
    signature = relais_sync_base64_decode (request->signature, crypto_sign_BYTES, &len, NULL);
  if (signature == NULL || len != crypto_sign_BYTES)
    return fail (error, RELAIS_SERVER_ERROR_BAD_SIGNATURE, "The request's signature is not well-formed.");

  device = relais_store_device_get (store, request->device, &local);
  if (device == NULL)
    {
      if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        {
          g_error_free (local);
          return fail (error, RELAIS_SERVER_ERROR_UNKNOWN_DEVICE, "This device is not enrolled.");
        }
      propagate_store_error (error, local);
      return FALSE;
    }

  crypto_hash_sha256 (body_hash, request->body, request->body_len);
  sodium_bin2hex (body_hex, sizeof body_hex, body_hash, sizeof body_hash);
  message = g_string_new ("relais-request-v1\n");
  g_string_append_printf (message, "%s\n%s\n%s\n%s\n%s",
                          request->method, request->uri, request->time,
                          request->nonce, body_hex);
  if (crypto_sign_verify_detached (signature, (const guint8 *) message->str, message->len,
                                   device->pk) != 0)
    return fail (error, RELAIS_SERVER_ERROR_BAD_SIGNATURE,
                 "The request's signature does not match this device's key.");
  if (device->revoked)
    return fail (error, RELAIS_SERVER_ERROR_DEVICE_REVOKED, "This device has been revoked.");
  if (time > call->now + RELAIS_SERVER_CLOCK_WINDOW || time < call->now - RELAIS_SERVER_CLOCK_WINDOW)
    return fail (error, RELAIS_SERVER_ERROR_STALE_REQUEST,
                 "The request's time is more than five minutes from the server's clock.");

  /* The nonce must outlive the window in which its time is accepted. */
  if (!WRITE (relais_store_nonce_use (store, device->device_id, nonce, RELAIS_SERVER_NONCE_SIZE,
                               MAX (call->now, time) + RELAIS_SERVER_NONCE_LIFETIME,
                               call->now, &local)))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  /* Best effort, and at most once a minute: last_seen is for the
   * administrator's device list, not worth a write per request. */
  if (call->now - device->last_seen >= 60
      && !WRITE (relais_store_device_seen (store, device->device_id, call->now, &local)))
    {
      g_warning ("store: %s", local->message);
      g_clear_error (&local);
    }

  call->user = relais_store_user_get (store, device->user_id, &local);
  if (call->user == NULL)
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  call->device = g_steal_pointer (&device);
  return TRUE;
}

static gboolean
require_admin (Call *call, const char *org, GError **error)
{
  if (!call->user->admin)
    return fail (error, RELAIS_SERVER_ERROR_NOT_ADMIN,
                 "Only an administrator's device may do this.");
  if (org != NULL && g_strcmp0 (org, call->user->org) != 0)
    return fail (error, RELAIS_SERVER_ERROR_NOT_ADMIN,
                 "An administrator acts only within their own organisation.");
  return TRUE;
}

/* A user that must exist: NOT_FOUND with a message about users. */
static RelaisStoreUser *
get_user (Call *call, const char *user_id, GError **error)
{
  GError *local = NULL;
  RelaisStoreUser *user = relais_store_user_get (call->api->store, user_id, &local);

  if (user == NULL)
    {
      if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        {
          g_error_free (local);
          fail (error, RELAIS_SERVER_ERROR_NOT_FOUND, "No user is known under that id.");
          return NULL;
        }
      propagate_store_error (error, local);
    }
  return user;
}

static gboolean
get_epoch (Call *call, const char *dossier_id, guint32 *out_epoch, GError **error)
{
  GError *local = NULL;

  if (relais_store_dossier_epoch (call->api->store, dossier_id, out_epoch, &local))
    return TRUE;
  if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
    {
      g_error_free (local);
      return fail (error, RELAIS_SERVER_ERROR_NOT_FOUND, "No dossier is known under that id.");
    }
  propagate_store_error (error, local);
  return FALSE;
}

static gboolean
require_member (Call *call, const char *dossier_id, GError **error)
{
  GError *local = NULL;
  gboolean member = FALSE;
  guint32 epoch;

  if (!get_epoch (call, dossier_id, &epoch, error))
    return FALSE;
  if (!relais_store_is_member (call->api->store, dossier_id, call->user->user_id, &member, &local))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  if (!member)
    return fail (error, RELAIS_SERVER_ERROR_NOT_MEMBER, "You are not a member of this dossier.");
  return TRUE;
}

/* {"dossier_id","epoch","epochs":[…],"members":[…]}: the keys of a dossier
 * as GET …/keys, pulls and recovery give them. */
static void
add_dossier_keys (JsonBuilder *builder, const char *dossier_id, guint32 epoch,
                  GPtrArray *keys, GPtrArray *members)
{
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "dossier_id");
  json_builder_add_string_value (builder, dossier_id);
  json_builder_set_member_name (builder, "epoch");
  json_builder_add_int_value (builder, epoch);
  json_builder_set_member_name (builder, "epochs");
  json_builder_begin_array (builder);
  for (guint i = 0; i < keys->len; i++)
    {
      RelaisStoreWrappedKey *key = g_ptr_array_index (keys, i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "epoch");
      json_builder_add_int_value (builder, key->epoch);
      add_base64_bytes (builder, "wrapped_key", key->wrapped_key);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "members");
  json_builder_begin_array (builder);
  for (guint i = 0; i < members->len; i++)
    {
      RelaisStoreMember *member = g_ptr_array_index (members, i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "user_id");
      json_builder_add_string_value (builder, member->user_id);
      add_base64 (builder, "sign_pk", member->sign_pk, sizeof member->sign_pk);
      json_builder_set_member_name (builder, "since_epoch");
      json_builder_add_int_value (builder, member->since_epoch);
      json_builder_set_member_name (builder, "until_epoch");
      json_builder_add_int_value (builder, member->until_epoch);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
}

/* The keys of @dossier_id as @user_id holds them; NOT_MEMBER, NOT_FOUND.
 * The current epoch is read from the dossier, or, when @epoch_from_keys
 * (a pull's hundreds of dossiers), taken as the highest epoch of the
 * member's keys: every way in (create, share, grant, unshare) gives a
 * current member the current epoch's key, as the handlers check. */
static gboolean
load_dossier_keys_full (Call *call, const char *dossier_id, const char *user_id,
                        gboolean epoch_from_keys, guint32 *out_epoch,
                        GPtrArray **out_keys, GPtrArray **out_members, GError **error)
{
  GError *local = NULL;

  if (!relais_store_dossier_keys (call->api->store, dossier_id, user_id,
                                  out_keys, out_members, &local))
    {
      if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER))
        {
          g_error_free (local);
          return fail (error, RELAIS_SERVER_ERROR_NOT_MEMBER, "You are not a member of this dossier.");
        }
      propagate_store_error (error, local);
      return FALSE;
    }
  if (epoch_from_keys && (*out_keys)->len > 0)
    {
      *out_epoch = 0;
      for (guint i = 0; i < (*out_keys)->len; i++)
        *out_epoch = MAX (*out_epoch, ((RelaisStoreWrappedKey *) g_ptr_array_index (*out_keys, i))->epoch);
      return TRUE;
    }
  if (!get_epoch (call, dossier_id, out_epoch, error))
    {
      g_clear_pointer (out_keys, g_ptr_array_unref);
      g_clear_pointer (out_members, g_ptr_array_unref);
      return FALSE;
    }
  return TRUE;
}

static gboolean
load_dossier_keys (Call *call, const char *dossier_id, const char *user_id,
                   guint32 *out_epoch, GPtrArray **out_keys, GPtrArray **out_members,
                   GError **error)
{
  return load_dossier_keys_full (call, dossier_id, user_id, FALSE, out_epoch,
                                 out_keys, out_members, error);
}

/* ---- Handlers -------------------------------------------------------- */

typedef gboolean (*Handler) (Call *call, RelaisServerResponse *response, GError **error);

static gboolean
handle_health (Call *call, RelaisServerResponse *response, GError **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "status");
  json_builder_add_string_value (builder, "ok");
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, 1);
  json_builder_end_object (builder);
  respond_json (response, 200, builder);
  return TRUE;
}

static gboolean
handle_enrol (Call *call, RelaisServerResponse *response, GError **error)
{
  RelaisStore *store = call->api->store;
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisEnrolRequest) enrol = NULL;
  g_autoptr(RelaisStoreUser) user = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  g_autofree char *user_id = NULL;
  g_autofree char *device_id = NULL;
  guint8 hash[RELAIS_STORE_HASH_SIZE];
  guint8 recovery_key[RELAIS_STORE_KEY_SIZE];
  gboolean has_recovery;
  GError *local = NULL;

  enrol = relais_server_parse_enrol ((const char *) request->body, request->body_len, error);
  if (enrol == NULL)
    return FALSE;
  relais_server_code_hash (enrol->code, hash);
  user_id = WRITE (relais_store_code_use (store, hash, call->now, &local));
  if (user_id == NULL)
    {
      if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        {
          g_error_free (local);
          return fail (error, RELAIS_SERVER_ERROR_NOT_FOUND, "This enrolment code is unknown.");
        }
      propagate_store_error (error, local);
      return FALSE;
    }
  user = get_user (call, user_id, error);
  if (user == NULL)
    return FALSE;
  device_id = relais_oplog_new_id ();
  if (!WRITE (relais_store_device_add (store, device_id, user_id, enrol->device_name,
                                enrol->device_key, call->now, &local)))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  has_recovery = relais_store_recovery_key_get (store, user->org, recovery_key, &local);
  if (!has_recovery)
    {
      if (!g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        {
          propagate_store_error (error, local);
          return FALSE;
        }
      g_clear_error (&local);
    }

  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "user_id");
  json_builder_add_string_value (builder, user->user_id);
  json_builder_set_member_name (builder, "device_id");
  json_builder_add_string_value (builder, device_id);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, user->name);
  json_builder_set_member_name (builder, "org");
  json_builder_add_string_value (builder, user->org);
  json_builder_set_member_name (builder, "admin");
  json_builder_add_boolean_value (builder, user->admin);
  if (user->has_keys && user->wrapped_keys != NULL)
    add_base64_bytes (builder, "wrapped_user_keys", user->wrapped_keys);
  if (has_recovery)
    add_base64 (builder, "recovery_key", recovery_key, sizeof recovery_key);
  json_builder_end_object (builder);
  respond_json (response, 200, builder);
  return TRUE;
}

static gboolean
handle_put_keys (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisKeysRequest) keys = NULL;
  GError *local = NULL;

  keys = relais_server_parse_keys ((const char *) request->body, request->body_len, error);
  if (keys == NULL)
    return FALSE;
  if (!WRITE (relais_store_user_set_keys (call->api->store, call->user->user_id, keys->box_pk,
                                   keys->sign_pk, keys->wrapped_user_keys, &local)))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  respond_empty (response, 204);
  return TRUE;
}

static gboolean
handle_users (Call *call, RelaisServerResponse *response, GError **error)
{
  g_autoptr(GHashTable) query = relais_server_parse_query (call->query, error);
  g_autoptr(GPtrArray) users = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  GError *local = NULL;
  const char *org;

  if (query == NULL)
    return FALSE;
  org = g_hash_table_lookup (query, "org");
  if (org != NULL && *org == '\0')
    org = NULL;
  users = relais_store_user_list (call->api->store, org, &local);
  if (users == NULL)
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "users");
  json_builder_begin_array (builder);
  for (guint i = 0; i < users->len; i++)
    {
      RelaisStoreUser *user = g_ptr_array_index (users, i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "user_id");
      json_builder_add_string_value (builder, user->user_id);
      json_builder_set_member_name (builder, "name");
      json_builder_add_string_value (builder, user->name);
      json_builder_set_member_name (builder, "org");
      json_builder_add_string_value (builder, user->org);
      json_builder_set_member_name (builder, "has_keys");
      json_builder_add_boolean_value (builder, user->has_keys);
      /* A user without keys yet cannot be shared with: no keys to give. */
      if (user->has_keys)
        {
          add_base64 (builder, "box_pk", user->box_pk, sizeof user->box_pk);
          add_base64 (builder, "sign_pk", user->sign_pk, sizeof user->sign_pk);
        }
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  respond_json (response, 200, builder);
  return TRUE;
}

/* Every member named must be a user with keys: a wrap for anyone else is
 * a mistake that would lock the dossier away from its team. */
static gboolean
check_members_exist (Call *call, GPtrArray *keys, GError **error)
{
  for (guint i = 0; i < keys->len; i++)
    {
      RelaisStoreWrappedKey *key = g_ptr_array_index (keys, i);
      g_autoptr(RelaisStoreUser) user = NULL;

      if (key->user_id == NULL)
        continue;
      user = get_user (call, key->user_id, error);
      if (user == NULL)
        return FALSE;
      if (!user->has_keys)
        return fail (error, RELAIS_SERVER_ERROR_NOT_FOUND, "A member has no keys yet.");
    }
  return TRUE;
}

/* Recovery wraps (user_id NULL) belong to the caller's organisation. */
static void
set_recovery_org (Call *call, GPtrArray *keys)
{
  for (guint i = 0; i < keys->len; i++)
    {
      RelaisStoreWrappedKey *key = g_ptr_array_index (keys, i);

      if (key->user_id == NULL)
        {
          g_free (key->org);
          key->org = g_strdup (call->user->org);
        }
    }
}

static gboolean
handle_dossier_create (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisDossierRequest) dossier = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  gboolean creator_listed = FALSE;
  GError *local = NULL;

  dossier = relais_server_parse_dossier ((const char *) request->body, request->body_len, error);
  if (dossier == NULL)
    return FALSE;
  for (guint i = 0; i < dossier->keys->len; i++)
    {
      RelaisStoreWrappedKey *key = g_ptr_array_index (dossier->keys, i);

      if (g_strcmp0 (key->user_id, call->user->user_id) == 0)
        creator_listed = TRUE;
    }
  if (!creator_listed)
    return fail (error, RELAIS_SERVER_ERROR_MALFORMED, "The dossier's creator must be one of its members.");
  if (!check_members_exist (call, dossier->keys, error))
    return FALSE;
  set_recovery_org (call, dossier->keys);
  if (!WRITE (relais_store_dossier_create (call->api->store, dossier->dossier_id, dossier->keys,
                                    call->now, &local)))
    {
      gboolean member = FALSE;

      if (!g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_EXISTS))
        {
          propagate_store_error (error, local);
          return FALSE;
        }
      g_clear_error (&local);
      /* A retried creation by a member succeeds; anyone else learns only
       * that the id is not theirs. */
      if (!relais_store_is_member (call->api->store, dossier->dossier_id, call->user->user_id,
                                   &member, &local))
        {
          propagate_store_error (error, local);
          return FALSE;
        }
      if (!member)
        return fail (error, RELAIS_SERVER_ERROR_NOT_MEMBER, "You are not a member of this dossier.");
      respond_empty (response, 204);
      return TRUE;
    }
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "dossier_id");
  json_builder_add_string_value (builder, dossier->dossier_id);
  json_builder_end_object (builder);
  respond_json (response, 201, builder);
  return TRUE;
}

static gboolean
handle_dossier_keys (Call *call, RelaisServerResponse *response, GError **error)
{
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  guint32 epoch;

  if (!load_dossier_keys (call, call->id, call->user->user_id, &epoch, &keys, &members, error))
    return FALSE;
  builder = json_builder_new ();
  add_dossier_keys (builder, call->id, epoch, keys, members);
  respond_json (response, 200, builder);
  return TRUE;
}

/* Share and grant: the epochs given must end at the current one, or the
 * member would miss what follows (a rotation raced the request). */
static gboolean
do_share (Call *call, RelaisShareRequest *share, RelaisServerResponse *response, GError **error)
{
  g_autoptr(RelaisStoreUser) user = NULL;
  GError *local = NULL;
  guint32 epoch, highest = 0;

  if (!get_epoch (call, call->id, &epoch, error))
    return FALSE;
  user = get_user (call, share->user_id, error);
  if (user == NULL)
    return FALSE;
  if (!user->has_keys)
    return fail (error, RELAIS_SERVER_ERROR_NOT_FOUND, "That user has no keys yet.");
  for (guint i = 0; i < share->keys->len; i++)
    {
      RelaisStoreWrappedKey *key = g_ptr_array_index (share->keys, i);

      highest = MAX (highest, key->epoch);
    }
  if (highest != epoch)
    return fail (error, RELAIS_SERVER_ERROR_EPOCH_RETIRED,
                 "The keys given do not end at the dossier's current epoch.");
  if (!WRITE (relais_store_dossier_share (call->api->store, call->id, share->user_id, share->keys, &local)))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  respond_empty (response, 204);
  return TRUE;
}

static gboolean
handle_share (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisShareRequest) share = NULL;

  share = relais_server_parse_share ((const char *) request->body, request->body_len, error);
  if (share == NULL || !require_member (call, call->id, error))
    return FALSE;
  return do_share (call, share, response, error);
}

static gboolean
handle_unshare (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisDossierRequest) unshare = NULL;
  g_autoptr(GPtrArray) keys = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GHashTable) remaining = g_hash_table_new (g_str_hash, g_str_equal);
  GError *local = NULL;
  guint32 epoch;

  unshare = relais_server_parse_unshare ((const char *) request->body, request->body_len, error);
  if (unshare == NULL
      || !load_dossier_keys (call, call->id, call->user->user_id, &epoch, &keys, &members, error))
    return FALSE;
  if (unshare->epoch != epoch + 1)
    return fail (error, RELAIS_SERVER_ERROR_EPOCH_RETIRED,
                 "The new epoch must follow the dossier's current one.");

  /* The new keys go to exactly the members who remain: one left out
   * would lose the dossier, one added would gain it without a share. */
  for (guint i = 0; i < members->len; i++)
    {
      RelaisStoreMember *member = g_ptr_array_index (members, i);

      if (member->until_epoch == 0 && strcmp (member->user_id, unshare->user_id) != 0)
        g_hash_table_add (remaining, member->user_id);
    }
  for (guint i = 0; i < unshare->keys->len; i++)
    {
      RelaisStoreWrappedKey *key = g_ptr_array_index (unshare->keys, i);

      if (key->user_id == NULL)
        continue;
      if (!g_hash_table_remove (remaining, key->user_id))
        return fail (error, RELAIS_SERVER_ERROR_MALFORMED,
                     "The new keys must go to exactly the members who remain.");
    }
  if (g_hash_table_size (remaining) != 0)
    return fail (error, RELAIS_SERVER_ERROR_MALFORMED,
                 "The new keys must go to exactly the members who remain.");
  set_recovery_org (call, unshare->keys);
  if (!WRITE (relais_store_dossier_unshare (call->api->store, call->id, unshare->user_id,
                                     unshare->epoch, unshare->keys, &local)))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  respond_empty (response, 204);
  return TRUE;
}

static const char *
refusal_code (GError *error)
{
  if (error->domain == RELAIS_STORE_ERROR)
    switch ((RelaisStoreError) error->code)
      {
      case RELAIS_STORE_ERROR_NOT_MEMBER:
      case RELAIS_STORE_ERROR_NOT_FOUND:
        return "not_member";
      case RELAIS_STORE_ERROR_EPOCH_RETIRED:
        return "epoch_retired";
      case RELAIS_STORE_ERROR_ID_CONFLICT:
      case RELAIS_STORE_ERROR_EXISTS:
        return "id_conflict";
      default:
        return NULL;
      }
  return NULL;
}

static void
add_refused (JsonBuilder *builder, const guint8 *id, const char *code)
{
  json_builder_begin_object (builder);
  if (id != NULL)
    add_base64 (builder, "id", id, RELAIS_CHANGESET_ID_SIZE);
  json_builder_set_member_name (builder, "status");
  json_builder_add_string_value (builder, "refused");
  json_builder_set_member_name (builder, "error");
  json_builder_add_string_value (builder, code);
  json_builder_end_object (builder);
}

static gboolean
handle_push (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisPushRequest) push = NULL;
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  push = relais_server_parse_push ((const char *) request->body, request->body_len, error);
  if (push == NULL)
    return FALSE;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "results");
  json_builder_begin_array (builder);
  for (guint i = 0; i < push->envelopes->len; i++)
    {
      GBytes *envelope = g_ptr_array_index (push->envelopes, i);
      g_auto(RelaisChangesetHeader) header = { 0 };
      RelaisStoreChangeset changeset;
      const guint8 *data;
      GError *local = NULL;
      gboolean duplicate = FALSE;
      guint64 seq = 0;
      gsize len;

      if (envelope == NULL)
        {
          add_refused (builder, NULL, "bad_base64");
          continue;
        }
      data = g_bytes_get_data (envelope, &len);
      if (!relais_changeset_peek (data, len, &header, &local))
        {
          add_refused (builder, NULL,
                       g_error_matches (local, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE)
                       ? "too_large" : "malformed");
          g_clear_error (&local);
          continue;
        }
      /* A user pushes only what they signed: a device cannot replay a
       * colleague's change sets as its own pushes. */
      if (!call->user->has_keys
          || sodium_memcmp (header.author_key, call->user->sign_pk, RELAIS_STORE_KEY_SIZE) != 0)
        {
          add_refused (builder, header.id, "author_mismatch");
          continue;
        }
      if (!relais_changeset_verify (data, len, &local))
        {
          add_refused (builder, header.id, "bad_signature");
          g_clear_error (&local);
          continue;
        }
      changeset = (RelaisStoreChangeset) {
        .dossier_id = header.dossier,
        .id = header.id,
        .epoch = header.epoch,
        .author_user = call->user->user_id,
        .device_id = call->device->device_id,
        .envelope = envelope,
      };
      if (!WRITE (relais_store_changeset_put (call->api->store, &changeset, call->now,
                                       &seq, &duplicate, &local)))
        {
          const char *code = refusal_code (local);

          /* A database failure fails the whole push: what was stored
           * before it answers "duplicate" when the client pushes again. */
          if (code == NULL)
            {
              propagate_store_error (error, local);
              return FALSE;
            }
          add_refused (builder, header.id, code);
          g_clear_error (&local);
          continue;
        }
      json_builder_begin_object (builder);
      add_base64 (builder, "id", header.id, RELAIS_CHANGESET_ID_SIZE);
      json_builder_set_member_name (builder, "status");
      json_builder_add_string_value (builder, duplicate ? "duplicate" : "stored");
      json_builder_set_member_name (builder, "seq");
      json_builder_add_int_value (builder, (gint64) seq);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  respond_json (response, 200, builder);
  return TRUE;
}

/* What the store may return in envelope bytes: base64 makes 4/3 of it, and
 * the keys of up to 500 dossiers take some room in the 8 MiB. */
#define PULL_STORE_BYTES (5 * 1024 * 1024)
#define BASE64_LEN(n) (((n) + 2) / 3 * 4)

typedef struct {
  guint32    epoch;
  GPtrArray *keys;
  GPtrArray *members;
  gsize      json_size;   /* about what it adds to the answer */
} PulledDossier;

static void
pulled_dossier_free (PulledDossier *dossier)
{
  if (dossier == NULL)
    return;
  g_clear_pointer (&dossier->keys, g_ptr_array_unref);
  g_clear_pointer (&dossier->members, g_ptr_array_unref);
  g_free (dossier);
}

static gboolean
handle_pull (Call *call, RelaisServerResponse *response, GError **error)
{
  g_autoptr(GHashTable) query = relais_server_parse_query (call->query, error);
  g_autoptr(GHashTable) dossiers = NULL;
  g_autoptr(GPtrArray) pulled = NULL;
  g_autoptr(GPtrArray) order = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  g_autofree char *cursor_text = NULL;
  RelaisStoreCursor cursor = { 0, 0 };
  GError *local = NULL;
  gboolean more = FALSE;
  const char *text;
  guint64 limit = RELAIS_SERVER_MAX_PULL;
  gsize size = 64;
  guint kept = 0;

  if (query == NULL)
    return FALSE;
  text = g_hash_table_lookup (query, "cursor");
  if (text != NULL && *text != '\0'
      && !relais_server_cursor_decode (call->api->secret, text, &cursor, error))
    return FALSE;
  text = g_hash_table_lookup (query, "limit");
  if (text != NULL && !g_ascii_string_to_unsigned (text, 10, 1, G_MAXUINT32, &limit, NULL))
    return fail (error, RELAIS_SERVER_ERROR_MALFORMED, "The limit must be a positive integer.");
  limit = MIN (limit, RELAIS_SERVER_MAX_PULL);

  pulled = relais_store_changeset_pull (call->api->store, call->user->user_id,
                                        call->device->device_id, &cursor, (guint) limit,
                                        PULL_STORE_BYTES, &more, &local);
  if (pulled == NULL)
    {
      propagate_store_error (error, local);
      return FALSE;
    }

  /* The keys of every dossier of the page, once each, and a page that
   * stays under 8 MiB however many keys and members they have. */
  dossiers = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                    (GDestroyNotify) pulled_dossier_free);
  order = g_ptr_array_new ();
  for (guint i = 0; i < pulled->len; i++)
    {
      RelaisStorePulled *item = g_ptr_array_index (pulled, i);
      PulledDossier *dossier;
      gsize add = BASE64_LEN (g_bytes_get_size (item->envelope)) + 3;
      gboolean known = g_hash_table_contains (dossiers, item->dossier_id);

      if (!known)
        {
          dossier = g_new0 (PulledDossier, 1);
          if (!load_dossier_keys_full (call, item->dossier_id, call->user->user_id, TRUE,
                                       &dossier->epoch, &dossier->keys, &dossier->members, &local))
            {
              pulled_dossier_free (dossier);
              /* Removed from the team since the page was read: what it
               * would have received is no longer theirs. */
              if (g_error_matches (local, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_NOT_MEMBER)
                  || g_error_matches (local, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_NOT_FOUND))
                {
                  g_clear_error (&local);
                  g_hash_table_insert (dossiers, item->dossier_id, NULL);
                  kept = i + 1;
                  continue;
                }
              g_propagate_error (error, local);
              return FALSE;
            }
          dossier->json_size = 96 + strlen (item->dossier_id)
                               + dossier->keys->len * (BASE64_LEN (WRAP_MAX) + 40)
                               + dossier->members->len * (160);
          g_hash_table_insert (dossiers, item->dossier_id, dossier);
          add += dossier->json_size;
        }
      dossier = g_hash_table_lookup (dossiers, item->dossier_id);
      if (dossier == NULL)
        {
          kept = i + 1;
          continue;
        }
      if (i > 0 && size + add > RELAIS_SERVER_MAX_ANSWER)
        {
          more = TRUE;
          break;
        }
      size += add;
      if (!known)
        g_ptr_array_add (order, item->dossier_id);
      kept = i + 1;
    }

  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "changesets");
  json_builder_begin_array (builder);
  for (guint i = 0; i < kept; i++)
    {
      RelaisStorePulled *item = g_ptr_array_index (pulled, i);

      if (g_hash_table_lookup (dossiers, item->dossier_id) != NULL)
        add_base64_bytes (builder, NULL, item->envelope);
      cursor = item->position;
    }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "keys");
  json_builder_begin_array (builder);
  for (guint i = 0; i < order->len; i++)
    {
      const char *dossier_id = g_ptr_array_index (order, i);
      PulledDossier *dossier = g_hash_table_lookup (dossiers, dossier_id);

      add_dossier_keys (builder, dossier_id, dossier->epoch, dossier->keys, dossier->members);
    }
  json_builder_end_array (builder);
  cursor_text = relais_server_cursor_encode (call->api->secret, &cursor);
  json_builder_set_member_name (builder, "cursor");
  json_builder_add_string_value (builder, cursor_text);
  json_builder_set_member_name (builder, "more");
  json_builder_add_boolean_value (builder, more || kept < pulled->len);
  json_builder_end_object (builder);
  respond_json (response, 200, builder);
  return TRUE;
}

static gboolean
handle_admin_recovery (Call *call, RelaisServerResponse *response, GError **error)
{
  g_autoptr(RelaisStoreUser) target = NULL;
  g_autoptr(GPtrArray) wraps = NULL;
  g_autoptr(GPtrArray) wrap_dossiers = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  GError *local = NULL;
  guint i = 0;

  if (!require_admin (call, NULL, error))
    return FALSE;
  target = get_user (call, call->id, error);
  if (target == NULL || !require_admin (call, target->org, error))
    return FALSE;
  if (!relais_store_recovery_wraps (call->api->store, target->user_id, call->user->org,
                                    &wraps, &wrap_dossiers, &local))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "dossiers");
  json_builder_begin_array (builder);
  /* The wraps come ordered by dossier then epoch: one entry per run. */
  while (i < wraps->len)
    {
      const char *dossier_id = g_ptr_array_index (wrap_dossiers, i);
      g_autoptr(GPtrArray) epochs = g_ptr_array_new ();
      g_autoptr(GPtrArray) keys = NULL;
      g_autoptr(GPtrArray) members = NULL;
      guint32 epoch;

      for (; i < wraps->len && strcmp (g_ptr_array_index (wrap_dossiers, i), dossier_id) == 0; i++)
        g_ptr_array_add (epochs, g_ptr_array_index (wraps, i));
      if (!load_dossier_keys (call, dossier_id, target->user_id, &epoch, &keys, &members, &local))
        {
          /* The user left the dossier in the meantime: nothing to recover. */
          if (g_error_matches (local, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_NOT_MEMBER))
            {
              g_clear_error (&local);
              continue;
            }
          g_propagate_error (error, local);
          return FALSE;
        }
      add_dossier_keys (builder, dossier_id, epoch, epochs, members);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  respond_json (response, 200, builder);
  return TRUE;
}

static gboolean
handle_admin_grant (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisShareRequest) share = NULL;
  g_autoptr(RelaisStoreUser) target = NULL;

  if (!require_admin (call, NULL, error))
    return FALSE;
  share = relais_server_parse_share ((const char *) request->body, request->body_len, error);
  if (share == NULL)
    return FALSE;
  target = get_user (call, share->user_id, error);
  if (target == NULL || !require_admin (call, target->org, error))
    return FALSE;
  return do_share (call, share, response, error);
}

static gboolean
handle_admin_recovery_key (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisRecoveryKeyRequest) key = NULL;
  GError *local = NULL;

  if (!require_admin (call, NULL, error))
    return FALSE;
  key = relais_server_parse_recovery_key ((const char *) request->body, request->body_len, error);
  if (key == NULL || !require_admin (call, key->org, error))
    return FALSE;
  if (!WRITE (relais_store_recovery_key_set (call->api->store, key->org, key->box_pk, &local)))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  respond_empty (response, 204);
  return TRUE;
}

static gboolean
handle_admin_revoke (Call *call, RelaisServerResponse *response, GError **error)
{
  g_autoptr(RelaisStoreDevice) device = NULL;
  g_autoptr(RelaisStoreUser) owner = NULL;
  GError *local = NULL;

  if (!require_admin (call, NULL, error))
    return FALSE;
  device = relais_store_device_get (call->api->store, call->id, &local);
  if (device == NULL)
    {
      if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        {
          g_error_free (local);
          return fail (error, RELAIS_SERVER_ERROR_NOT_FOUND, "No device is known under that id.");
        }
      propagate_store_error (error, local);
      return FALSE;
    }
  owner = get_user (call, device->user_id, error);
  if (owner == NULL || !require_admin (call, owner->org, error))
    return FALSE;
  if (!WRITE (relais_store_device_revoke (call->api->store, device->device_id, &local)))
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  respond_empty (response, 204);
  return TRUE;
}

/* GET /v1/recovery/missing: what recovery wraps the caller's device could
 * add (PROTOCOL.md §5.2).  ?after=DOSSIER&after_org=ORG resumes after a
 * full answer. */
static gboolean
handle_recovery_missing (Call *call, RelaisServerResponse *response, GError **error)
{
  g_autoptr(GHashTable) query = relais_server_parse_query (call->query, error);
  g_autoptr(GPtrArray) missing = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  const char *after = NULL, *after_org = NULL;
  GError *local = NULL;

  if (query == NULL)
    return FALSE;
  after = g_hash_table_lookup (query, "after");
  after_org = g_hash_table_lookup (query, "after_org");
  if ((after == NULL) != (after_org == NULL)
      || (after != NULL && !relais_server_id_is_valid (after))
      || (after_org != NULL && (*after_org == '\0' || strlen (after_org) > TEXT_MAX)))
    return fail (error, RELAIS_SERVER_ERROR_MALFORMED,
                 "The query needs both \"after\" (a dossier id) and \"after_org\", or neither.");
  missing = relais_store_recovery_missing (call->api->store, call->user->user_id, after, after_org,
                                           RELAIS_SERVER_MISSING_MAX, &local);
  if (missing == NULL)
    {
      propagate_store_error (error, local);
      return FALSE;
    }
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "missing");
  json_builder_begin_array (builder);
  for (guint i = 0; i < missing->len; i++)
    {
      RelaisStoreRecoveryMissing *entry = g_ptr_array_index (missing, i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "dossier_id");
      json_builder_add_string_value (builder, entry->dossier_id);
      json_builder_set_member_name (builder, "org");
      json_builder_add_string_value (builder, entry->org);
      add_base64 (builder, "recovery_key", entry->recovery_key, sizeof entry->recovery_key);
      json_builder_set_member_name (builder, "epochs");
      json_builder_begin_array (builder);
      for (guint j = 0; j < entry->epochs->len; j++)
        json_builder_add_int_value (builder, g_array_index (entry->epochs, guint32, j));
      json_builder_end_array (builder);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_end_object (builder);
  respond_json (response, 200, builder);
  return TRUE;
}

/* POST /v1/dossiers/{id}/recovery: a member adds an organisation's missing
 * recovery wraps.  The server cannot check that a wrap opens with the
 * organisation's key; it trusts members as for recovery_wrapped_key. */
static gboolean
handle_recovery_add (Call *call, RelaisServerResponse *response, GError **error)
{
  const RelaisServerRequest *request = call->request;
  g_autoptr(RelaisRecoveryAddRequest) add = NULL;
  GError *local = NULL;

  add = relais_server_parse_recovery_add ((const char *) request->body, request->body_len, error);
  if (add == NULL || !require_member (call, call->id, error))
    return FALSE;
  if (!WRITE (relais_store_recovery_add (call->api->store, call->id, call->user->user_id,
                                         add->org, add->keys, &local)))
    {
      if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_FOUND))
        {
          g_error_free (local);
          return fail (error, RELAIS_SERVER_ERROR_NOT_FOUND,
                       "That organisation has no recovery key, or the dossier is unknown.");
        }
      if (g_error_matches (local, RELAIS_STORE_ERROR, RELAIS_STORE_ERROR_NOT_MEMBER))
        {
          g_error_free (local);
          return fail (error, RELAIS_SERVER_ERROR_NOT_MEMBER,
                       "That organisation has no member in this dossier, or you are not one.");
        }
      propagate_store_error (error, local);
      return FALSE;
    }
  respond_empty (response, 204);
  return TRUE;
}

/* ---- Routing --------------------------------------------------------- */

typedef struct {
  const char *method;
  const char *pattern;
  Handler     handler;
  gboolean    is_signed;
} Route;

static const Route routes[] = {
  { "GET",  "/v1/health",                     handle_health,             FALSE },
  { "POST", "/v1/enrol",                      handle_enrol,              FALSE },
  { "PUT",  "/v1/me/keys",                    handle_put_keys,           TRUE },
  { "GET",  "/v1/users",                      handle_users,              TRUE },
  { "POST", "/v1/dossiers",                   handle_dossier_create,     TRUE },
  { "GET",  "/v1/dossiers/{id}/keys",         handle_dossier_keys,       TRUE },
  { "POST", "/v1/dossiers/{id}/share",        handle_share,              TRUE },
  { "POST", "/v1/dossiers/{id}/unshare",      handle_unshare,            TRUE },
  { "POST", "/v1/dossiers/{id}/recovery",     handle_recovery_add,       TRUE },
  { "GET",  "/v1/recovery/missing",           handle_recovery_missing,   TRUE },
  { "POST", "/v1/changesets",                 handle_push,               TRUE },
  { "GET",  "/v1/changesets",                 handle_pull,               TRUE },
  { "POST", "/v1/admin/recovery-key",         handle_admin_recovery_key, TRUE },
  { "GET",  "/v1/admin/recovery/{id}",        handle_admin_recovery,     TRUE },
  { "POST", "/v1/admin/dossiers/{id}/grant",  handle_admin_grant,        TRUE },
  { "POST", "/v1/admin/devices/{id}/revoke",  handle_admin_revoke,       TRUE },
};

/* Whether @path (no query) matches @pattern; the {id} segment, checked as
 * an id, goes to *@out_id. */
static gboolean
route_matches (const char *pattern, const char *path, char **out_id)
{
  const char *p = pattern, *s = path;
  g_autofree char *id = NULL;

  while (*p != '\0')
    {
      if (g_str_has_prefix (p, "{id}"))
        {
          const char *end = strchr (s, '/');
          gsize len = end != NULL ? (gsize) (end - s) : strlen (s);

          id = g_strndup (s, len);
          if (!relais_server_id_is_valid (id))
            return FALSE;
          p += 4;
          s += len;
          continue;
        }
      if (*p != *s)
        return FALSE;
      p++;
      s++;
    }
  if (*s != '\0')
    return FALSE;
  if (out_id != NULL)
    *out_id = g_steal_pointer (&id);
  return TRUE;
}

static char *
uri_path (const char *uri)
{
  const char *q = strchr (uri, '?');

  return q != NULL ? g_strndup (uri, q - uri) : g_strdup (uri);
}

const char *
relais_server_api_route_name (const char *uri)
{
  g_autofree char *path = NULL;

  if (uri == NULL)
    return "other";
  path = uri_path (uri);
  for (guint i = 0; i < G_N_ELEMENTS (routes); i++)
    if (route_matches (routes[i].pattern, path, NULL))
      return routes[i].pattern;
  return "other";
}

void
relais_server_api_handle (RelaisServerApi            *api,
                          const RelaisServerRequest  *request,
                          RelaisServerResponse       *response)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = uri_path (request->uri);
  const Route *route = NULL;
  gboolean path_known = FALSE, allow_get = FALSE, allow_post = FALSE;
  const char *query = strchr (request->uri, '?');
  Call call = {
    .api = api,
    .request = request,
    .query = query != NULL ? query + 1 : NULL,
    .now = g_get_real_time () / G_USEC_PER_SEC,
  };

  response->status = 500;
  response->route = "other";
  response->error_code = NULL;
  response->allow = NULL;
  response->retry_after = 0;
  for (guint i = 0; i < G_N_ELEMENTS (routes); i++)
    {
      g_autofree char *id = NULL;

      if (!route_matches (routes[i].pattern, path, &id))
        continue;
      if (!path_known)
        response->route = routes[i].pattern;
      path_known = TRUE;
      allow_get |= strcmp (routes[i].method, "GET") == 0;
      allow_post |= strcmp (routes[i].method, "POST") == 0;
      if (route == NULL && strcmp (routes[i].method, request->method) == 0)
        {
          route = &routes[i];
          response->route = route->pattern;
          call.id = g_steal_pointer (&id);
        }
    }

  if (route == NULL)
    {
      if (path_known)
        {
          response->allow = allow_get && allow_post ? "GET, POST"
                            : allow_get ? "GET" : allow_post ? "POST" : "PUT";
          g_set_error_literal (&error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_METHOD,
                               "This method is not allowed on this path.");
        }
      else
        g_set_error_literal (&error, RELAIS_SERVER_ERROR, RELAIS_SERVER_ERROR_NOT_FOUND,
                             "There is nothing at this path.");
    }
  else if (!route->is_signed || authenticate (&call, &error))
    route->handler (&call, response, &error);

  if (error != NULL)
    set_error_full (response, error, call.now);
  g_free (call.id);
  g_clear_pointer (&call.device, relais_store_device_free);
  g_clear_pointer (&call.user, relais_store_user_free);
}
