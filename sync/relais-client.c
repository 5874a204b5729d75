#define G_LOG_DOMAIN "relais-sync"

#include "config.h"

#include <string.h>
#include <curl/curl.h>
#include <glib/gi18n.h>
#include <json-glib/json-glib.h>

#include "relais-changeset.h"
#include "relais-client.h"
#include "relais-keys.h"

G_DEFINE_QUARK (relais-client-error-quark, relais_client_error)

/* The server pages pulls at 8 MiB; anything far beyond is not an answer
 * of PROTOCOL.md but a server (or something in between) filling memory. */
#define ANSWER_MAX            (16 * 1024 * 1024)
/* Our deepest answer (pull → keys → entry → members → member) nests five
 * levels; json-glib recurses without a limit, so a hostile "[[[[…" must
 * be refused before it reaches the parser. */
#define JSON_MAX_DEPTH        16
#define CONNECT_TIMEOUT       10
#define STALL_TIME            30
#define WRAPPED_USER_KEYS_SIZE 208    /* PROTOCOL.md §2.2 */
#define MAX_TEXT              1024
#define MAX_PUSH              100
#define MAX_PULL              500
#define MAX_CURSOR            512
#define MAX_EPOCHS            65536
#define MAX_MEMBERS           10000
#define MAX_USERS             200000
#define MAX_DOSSIERS          1000000
#define MAX_ERROR_CODE        64
#define MAX_MISSING           500
#define MAX_MISSING_EPOCHS    1000

struct _RelaisClient {
  CURL    *curl;
  char    *base;        /* scheme://host[:port], as curl normalised it */
  char    *cacert;
  gboolean plain;       /* http:// to loopback */
  char    *device_id;
  guint8  *device_sk;   /* sodium_malloc */
  guint    timeout;
};

/* Errors ------------------------------------------------------------------ */

gboolean
relais_client_error_is_transient (const GError *error)
{
  if (error == NULL || error->domain != RELAIS_CLIENT_ERROR)
    return FALSE;
  /* A replayed nonce cannot happen twice: the retry makes a new one. */
  return error->code == RELAIS_CLIENT_ERROR_NETWORK
         || error->code == RELAIS_CLIENT_ERROR_UNAVAILABLE
         || error->code == RELAIS_CLIENT_ERROR_REPLAYED;
}

static gboolean G_GNUC_PRINTF (2, 3)
proto_error (GError    **error,
             const char *format,
             ...)
{
  va_list args;
  g_autofree char *what = NULL;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL,
               _("The server's answer is not valid: %s."), what);
  return FALSE;
}

/* Identifiers -------------------------------------------------------------- */

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

static gboolean
is_base64url_text (const char *text)
{
  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

/* JSON reading -------------------------------------------------------------- */

static gboolean
check_json_text (const char *body,
                 gsize       len,
                 GError    **error)
{
  gboolean in_string = FALSE, escaped = FALSE, closed = FALSE;
  guint depth = 0;

  if (len == 0)
    return proto_error (error, _("it is empty"));
  if (len > ANSWER_MAX)
    return proto_error (error, _("it is too large"));
  if (memchr (body, '\0', len) != NULL)
    return proto_error (error, _("it contains a NUL byte"));
  if (!g_utf8_validate_len (body, len, NULL))
    return proto_error (error, _("it is not UTF-8"));
  for (gsize i = 0; i < len; i++)
    {
      char c = body[i];

      if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (c == '\\')
            escaped = TRUE;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (closed && !g_ascii_isspace (c))
        /* json-glib leaks the first value when a second follows. */
        return proto_error (error, _("it has data after its end"));
      else if (c == '"')
        in_string = TRUE;
      else if (c == '[' || c == '{')
        {
          if (++depth > JSON_MAX_DEPTH)
            return proto_error (error, _("it nests too deeply"));
        }
      else if ((c == ']' || c == '}') && depth > 0)
        closed = --depth == 0;
    }
  return TRUE;
}

static JsonObject *
parse_object (const char *body,
              gsize       len,
              GError    **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local = NULL;
  JsonNode *root;

  if (!check_json_text (body, len, error))
    return NULL;
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, body, (gssize) len, &local))
    {
      proto_error (error, _("it is not JSON"));
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      proto_error (error, _("it is not a JSON object"));
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

/* NULL (no error) when @name is absent or null and @optional. */
static JsonNode *
get_member (JsonObject  *object,
            const char  *name,
            gboolean     optional,
            gboolean    *ok,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, name);

  *ok = TRUE;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    {
      if (!optional)
        *ok = proto_error (error, _("\"%s\" is missing"), name);
      return NULL;
    }
  return node;
}

static gboolean
get_string (JsonObject  *object,
            const char  *name,
            gboolean     optional,
            gsize        max_len,
            const char **out,
            GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, name, optional, &ok, error);
  const char *text;

  *out = NULL;
  if (node == NULL)
    return ok;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return proto_error (error, _("\"%s\" is not a string"), name);
  text = json_node_get_string (node);
  if (strlen (text) > max_len)
    return proto_error (error, _("\"%s\" is too long"), name);
  *out = text;
  return TRUE;
}

static gboolean
get_id (JsonObject  *object,
        const char  *name,
        const char **out,
        GError     **error)
{
  if (!get_string (object, name, FALSE, RELAIS_CHANGESET_MAX_ID_LEN, out, error))
    return FALSE;
  if (!id_is_valid (*out))
    return proto_error (error, _("\"%s\" is not a valid id"), name);
  return TRUE;
}

static gboolean
get_uint (JsonObject  *object,
          const char  *name,
          gboolean     optional,
          guint64      max,
          guint64     *out,
          GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, name, optional, &ok, error);
  gint64 value;

  *out = 0;
  if (node == NULL)
    return ok;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return proto_error (error, _("\"%s\" is not an integer"), name);
  value = json_node_get_int (node);
  if (value < 0 || (guint64) value > max)
    return proto_error (error, _("\"%s\" is out of range"), name);
  *out = (guint64) value;
  return TRUE;
}

static gboolean
get_bool (JsonObject  *object,
          const char  *name,
          gboolean    *out,
          GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, name, FALSE, &ok, error);

  *out = FALSE;
  if (node == NULL)
    return ok;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return proto_error (error, _("\"%s\" is not a boolean"), name);
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* Binary fields: base64url of exactly @size bytes, or of 1..@size bytes
 * when @exact is FALSE.  *out is NULL (no error) when optional and absent. */
static gboolean
get_b64 (JsonObject  *object,
         const char  *name,
         gboolean     optional,
         gsize        size,
         gboolean     exact,
         GBytes     **out,
         GError     **error)
{
  const char *text;
  g_autofree guint8 *data = NULL;
  gsize len = 0;

  *out = NULL;
  if (!get_string (object, name, optional, (size + 2) / 3 * 4 + 4, &text, error))
    return FALSE;
  if (text == NULL)
    return TRUE;
  data = relais_sync_base64_decode (text, size, &len, NULL);
  if (data == NULL)
    return proto_error (error, _("\"%s\" is not base64url"), name);
  if (exact ? len != size : len == 0)
    return proto_error (error, _("\"%s\" has the wrong length"), name);
  *out = g_bytes_new_take (g_steal_pointer (&data), len);
  return TRUE;
}

static gboolean
get_key (JsonObject  *object,
         const char  *name,
         guint8      *out,
         gsize        size,
         GError     **error)
{
  g_autoptr(GBytes) bytes = NULL;

  if (!get_b64 (object, name, FALSE, size, TRUE, &bytes, error))
    return FALSE;
  memcpy (out, g_bytes_get_data (bytes, NULL), size);
  return TRUE;
}

/* *out is NULL (no error) when optional and absent. */
static gboolean
get_array (JsonObject  *object,
           const char  *name,
           gboolean     optional,
           guint        max,
           JsonArray  **out,
           GError     **error)
{
  gboolean ok;
  JsonNode *node = get_member (object, name, optional, &ok, error);

  *out = NULL;
  if (node == NULL)
    return ok;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return proto_error (error, _("\"%s\" is not an array"), name);
  if (json_array_get_length (json_node_get_array (node)) > max)
    return proto_error (error, _("\"%s\" has too many elements"), name);
  *out = json_node_get_array (node);
  return TRUE;
}

static JsonObject *
array_object (JsonArray   *array,
              guint        i,
              const char  *name,
              GError     **error)
{
  JsonNode *node = json_array_get_element (array, i);

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      proto_error (error, _("an element of \"%s\" is not an object"), name);
      return NULL;
    }
  return json_node_get_object (node);
}

/* The answers' structures ---------------------------------------------------- */

void
relais_enrolment_free (RelaisEnrolment *enrolment)
{
  if (enrolment == NULL)
    return;
  g_free (enrolment->user_id);
  g_free (enrolment->device_id);
  g_free (enrolment->name);
  g_free (enrolment->org);
  g_clear_pointer (&enrolment->wrapped_user_keys, g_bytes_unref);
  g_free (enrolment);
}

void
relais_directory_user_free (RelaisDirectoryUser *user)
{
  if (user == NULL)
    return;
  g_free (user->user_id);
  g_free (user->name);
  g_free (user->org);
  g_free (user);
}

RelaisWrappedKey *
relais_wrapped_key_new (const char *user_id,
                        guint32     epoch,
                        GBytes     *wrapped_key)
{
  RelaisWrappedKey *key = g_new0 (RelaisWrappedKey, 1);

  key->user_id = g_strdup (user_id);
  key->epoch = epoch;
  key->wrapped_key = g_bytes_ref (wrapped_key);
  return key;
}

void
relais_wrapped_key_free (RelaisWrappedKey *key)
{
  if (key == NULL)
    return;
  g_free (key->user_id);
  g_clear_pointer (&key->wrapped_key, g_bytes_unref);
  g_free (key);
}

void
relais_dossier_member_free (RelaisDossierMember *member)
{
  if (member == NULL)
    return;
  g_free (member->user_id);
  g_free (member);
}

void
relais_dossier_keys_free (RelaisDossierKeys *keys)
{
  if (keys == NULL)
    return;
  g_free (keys->dossier_id);
  g_clear_pointer (&keys->keys, g_ptr_array_unref);
  g_clear_pointer (&keys->members, g_ptr_array_unref);
  g_free (keys);
}

void
relais_push_result_free (RelaisPushResult *result)
{
  if (result == NULL)
    return;
  g_free (result->error);
  g_free (result);
}

void
relais_pull_page_free (RelaisPullPage *page)
{
  if (page == NULL)
    return;
  g_clear_pointer (&page->changesets, g_ptr_array_unref);
  g_clear_pointer (&page->keys, g_ptr_array_unref);
  g_free (page->cursor);
  g_free (page);
}

/* The answers' parsers ------------------------------------------------------- */

typedef struct {
  char   *code;
  char   *message;
  gint64  server_time;   /* stale_request: the server's clock, 0 if absent */
} ErrorAnswer;

static void
error_answer_clear (ErrorAnswer *answer)
{
  g_clear_pointer (&answer->code, g_free);
  g_clear_pointer (&answer->message, g_free);
}

static gboolean
parse_error (const char  *body,
             gsize        len,
             ErrorAnswer *out,
             GError     **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);
  const char *code, *message;

  if (root == NULL
      || !get_string (root, "error", FALSE, MAX_ERROR_CODE, &code, error)
      || !get_string (root, "message", FALSE, MAX_TEXT, &message, error))
    return FALSE;
  for (const char *p = code; *p != '\0'; p++)
    if (!g_ascii_islower (*p) && *p != '_')
      return proto_error (error, _("\"error\" is not an error code"));
  if (*code == '\0')
    return proto_error (error, _("\"error\" is empty"));
  out->code = g_strdup (code);
  /* The message is shown to a person and may go to a log: no control
   * characters from a hostile server. */
  out->message = g_strdup (message);
  for (char *p = out->message; *p != '\0'; p++)
    if ((guchar) *p < 0x20 || *p == 0x7f)
      *p = ' ';
  {
    guint64 server_time = 0;

    if (get_uint (root, "server_time", TRUE, G_MAXINT64, &server_time, NULL))
      out->server_time = (gint64) server_time;
  }
  return TRUE;
}

static RelaisEnrolment *
parse_enrol (const char *body,
             gsize       len,
             GError    **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);
  g_autoptr(RelaisEnrolment) enrolment = g_new0 (RelaisEnrolment, 1);
  g_autoptr(GBytes) recovery = NULL;
  const char *user_id, *device_id, *name, *org;

  if (root == NULL
      || !get_id (root, "user_id", &user_id, error)
      || !get_id (root, "device_id", &device_id, error)
      || !get_string (root, "name", FALSE, MAX_TEXT, &name, error)
      || !get_string (root, "org", FALSE, MAX_TEXT, &org, error)
      || !get_bool (root, "admin", &enrolment->admin, error)
      || !get_b64 (root, "wrapped_user_keys", TRUE, WRAPPED_USER_KEYS_SIZE, TRUE,
                   &enrolment->wrapped_user_keys, error)
      || !get_b64 (root, "recovery_key", TRUE, crypto_box_PUBLICKEYBYTES, TRUE,
                   &recovery, error))
    return NULL;
  enrolment->user_id = g_strdup (user_id);
  enrolment->device_id = g_strdup (device_id);
  enrolment->name = g_strdup (name);
  enrolment->org = g_strdup (org);
  if (recovery != NULL)
    {
      enrolment->has_recovery_key = TRUE;
      memcpy (enrolment->recovery_key, g_bytes_get_data (recovery, NULL),
              crypto_box_PUBLICKEYBYTES);
    }
  return g_steal_pointer (&enrolment);
}

static GPtrArray *
parse_users (const char *body,
             gsize       len,
             GError    **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);
  g_autoptr(GPtrArray) users = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_directory_user_free);
  JsonArray *array;

  if (root == NULL || !get_array (root, "users", FALSE, MAX_USERS, &array, error))
    return NULL;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *o = array_object (array, i, "users", error);
      g_autoptr(GBytes) box_pk = NULL, sign_pk = NULL;
      const char *user_id, *name, *org;
      RelaisDirectoryUser *user;

      if (o == NULL
          || !get_id (o, "user_id", &user_id, error)
          || !get_string (o, "name", FALSE, MAX_TEXT, &name, error)
          || !get_string (o, "org", FALSE, MAX_TEXT, &org, error)
          || !get_b64 (o, "box_pk", TRUE, crypto_box_PUBLICKEYBYTES, TRUE, &box_pk, error)
          || !get_b64 (o, "sign_pk", TRUE, crypto_sign_PUBLICKEYBYTES, TRUE, &sign_pk, error))
        return NULL;
      if ((box_pk == NULL) != (sign_pk == NULL))
        {
          proto_error (error, _("a user has one public key but not the other"));
          return NULL;
        }
      user = g_new0 (RelaisDirectoryUser, 1);
      user->user_id = g_strdup (user_id);
      user->name = g_strdup (name);
      user->org = g_strdup (org);
      user->has_keys = box_pk != NULL;
      if (box_pk != NULL)
        {
          memcpy (user->box_pk, g_bytes_get_data (box_pk, NULL), sizeof user->box_pk);
          memcpy (user->sign_pk, g_bytes_get_data (sign_pk, NULL), sizeof user->sign_pk);
        }
      g_ptr_array_add (users, user);
    }
  return g_steal_pointer (&users);
}

/* {"dossier_id"?,"epoch"?,"epochs":[…],"members":[…]}: the keys answer,
 * an entry of a pull's "keys", of a recovery's "dossiers", and the spool's
 * keys/ files.  @need_head: dossier_id and epoch are required. */
static RelaisDossierKeys *
parse_dossier_keys (JsonObject  *o,
                    const char  *dossier_id,
                    gboolean     need_head,
                    GError     **error)
{
  g_autoptr(RelaisDossierKeys) keys = g_new0 (RelaisDossierKeys, 1);
  g_autoptr(GHashTable) seen = NULL;
  JsonArray *epochs, *members;
  const char *id = NULL;
  guint64 epoch = 0, max_epoch = 0;

  if (need_head || json_object_has_member (o, "dossier_id"))
    {
      if (!get_id (o, "dossier_id", &id, error))
        return NULL;
      if (dossier_id != NULL && strcmp (id, dossier_id) != 0)
        {
          proto_error (error, _("the keys are another dossier's"));
          return NULL;
        }
    }
  else
    id = dossier_id != NULL ? dossier_id : "";   /* "" only for the fuzz test's parse */
  if (!get_uint (o, "epoch", !need_head, G_MAXUINT32, &epoch, error)
      || !get_array (o, "epochs", FALSE, MAX_EPOCHS, &epochs, error)
      || !get_array (o, "members", FALSE, MAX_MEMBERS, &members, error))
    return NULL;
  keys->dossier_id = g_strdup (id);
  keys->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_wrapped_key_free);
  keys->members = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_dossier_member_free);

  seen = g_hash_table_new (NULL, NULL);
  for (guint i = 0; i < json_array_get_length (epochs); i++)
    {
      JsonObject *e = array_object (epochs, i, "epochs", error);
      g_autoptr(GBytes) wrapped = NULL;
      guint64 n;

      if (e == NULL
          || !get_uint (e, "epoch", FALSE, G_MAXUINT32, &n, error)
          || !get_b64 (e, "wrapped_key", FALSE, RELAIS_WRAPPED_DOSSIER_KEY_SIZE, TRUE,
                       &wrapped, error))
        return NULL;
      if (n == 0)
        {
          proto_error (error, _("an epoch is 0"));
          return NULL;
        }
      if (g_hash_table_contains (seen, GUINT_TO_POINTER ((guint) n)))
        {
          proto_error (error, _("an epoch is listed twice"));
          return NULL;
        }
      g_hash_table_add (seen, GUINT_TO_POINTER ((guint) n));
      max_epoch = MAX (max_epoch, n);
      g_ptr_array_add (keys->keys, relais_wrapped_key_new (NULL, (guint32) n, wrapped));
    }
  for (guint i = 0; i < json_array_get_length (members); i++)
    {
      JsonObject *m = array_object (members, i, "members", error);
      const char *user_id;
      guint64 since, until;
      RelaisDossierMember *member;

      if (m == NULL
          || !get_id (m, "user_id", &user_id, error)
          || !get_uint (m, "since_epoch", FALSE, G_MAXUINT32, &since, error)
          || !get_uint (m, "until_epoch", TRUE, G_MAXUINT32, &until, error))
        return NULL;
      if (since == 0 || (until != 0 && until < since))
        {
          proto_error (error, _("a member's epochs are out of order"));
          return NULL;
        }
      member = g_new0 (RelaisDossierMember, 1);
      member->user_id = g_strdup (user_id);
      member->since_epoch = (guint32) since;
      member->until_epoch = (guint32) until;
      g_ptr_array_add (keys->members, member);
      if (!get_key (m, "sign_pk", member->sign_pk, sizeof member->sign_pk, error))
        return NULL;
    }
  keys->epoch = epoch != 0 ? (guint32) epoch : (guint32) max_epoch;
  if (max_epoch > keys->epoch)
    {
      proto_error (error, _("a key is newer than the dossier's epoch"));
      return NULL;
    }
  return g_steal_pointer (&keys);
}

static RelaisDossierKeys *
parse_keys (const char *body,
            gsize       len,
            const char *dossier_id,
            GError    **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);

  if (root == NULL)
    return NULL;
  return parse_dossier_keys (root, dossier_id, FALSE, error);
}

/* Each envelope is checked as far as can be without keys: its header, so
 * that a page the spool writes to in/ holds only envelopes. */
static GPtrArray *
parse_envelopes (JsonArray  *array,
                 GError    **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);
      g_auto(RelaisChangesetHeader) header = { 0 };
      g_autofree guint8 *data = NULL;
      const char *text;
      gsize len;

      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
        {
          proto_error (error, _("a change set is not a string"));
          return NULL;
        }
      text = json_node_get_string (node);
      if (strlen (text) > (RELAIS_CHANGESET_MAX_SIZE + 2) / 3 * 4 + 4)
        {
          proto_error (error, _("a change set is too large"));
          return NULL;
        }
      data = relais_sync_base64_decode (text, RELAIS_CHANGESET_MAX_SIZE, &len, NULL);
      if (data == NULL)
        {
          proto_error (error, _("a change set is not base64url"));
          return NULL;
        }
      if (!relais_changeset_peek (data, len, &header, NULL))
        {
          proto_error (error, _("a change set is not an envelope"));
          return NULL;
        }
      g_ptr_array_add (out, g_bytes_new_take (g_steal_pointer (&data), len));
    }
  return g_steal_pointer (&out);
}

static GPtrArray *
parse_push (const char *body,
            gsize       len,
            GError    **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);
  g_autoptr(GPtrArray) results = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_push_result_free);
  JsonArray *array;

  if (root == NULL || !get_array (root, "results", FALSE, MAX_PUSH, &array, error))
    return NULL;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *o = array_object (array, i, "results", error);
      g_autoptr(RelaisPushResult) result = g_new0 (RelaisPushResult, 1);
      const char *status, *code;

      g_autoptr(GBytes) id = NULL;

      /* The server leaves the id out of a refusal of what it could not
       * read as an envelope; relais_client_push() sends none such, and
       * finds such a result matches nothing it sent. */
      if (o == NULL
          || !get_b64 (o, "id", TRUE, RELAIS_CHANGESET_ID_SIZE, TRUE, &id, error)
          || !get_string (o, "status", FALSE, 16, &status, error)
          || !get_string (o, "error", TRUE, MAX_ERROR_CODE, &code, error)
          || !get_uint (o, "seq", TRUE, G_MAXINT64, &result->seq, error))
        return NULL;
      if (strcmp (status, "stored") == 0)
        result->status = RELAIS_PUSH_STORED;
      else if (strcmp (status, "duplicate") == 0)
        result->status = RELAIS_PUSH_DUPLICATE;
      else if (strcmp (status, "refused") == 0)
        result->status = RELAIS_PUSH_REFUSED;
      else
        {
          proto_error (error, _("\"status\" is unknown"));
          return NULL;
        }
      if (id != NULL)
        memcpy (result->id, g_bytes_get_data (id, NULL), RELAIS_CHANGESET_ID_SIZE);
      else if (result->status != RELAIS_PUSH_REFUSED)
        {
          proto_error (error, _("\"id\" is missing"));
          return NULL;
        }
      if (result->status == RELAIS_PUSH_REFUSED)
        {
          if (code == NULL || *code == '\0')
            {
              proto_error (error, _("a refusal has no \"error\""));
              return NULL;
            }
          for (const char *p = code; *p != '\0'; p++)
            if (!g_ascii_islower (*p) && *p != '_')
              {
                proto_error (error, _("\"error\" is not an error code"));
                return NULL;
              }
          result->error = g_strdup (code);
        }
      g_ptr_array_add (results, g_steal_pointer (&result));
    }
  return g_steal_pointer (&results);
}

static RelaisPullPage *
parse_pull (const char *body,
            gsize       len,
            guint       limit,
            GError    **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);
  g_autoptr(RelaisPullPage) page = g_new0 (RelaisPullPage, 1);
  JsonArray *changesets, *keys;
  const char *cursor;

  if (root == NULL
      || !get_array (root, "changesets", FALSE, limit, &changesets, error)
      || !get_string (root, "cursor", FALSE, MAX_CURSOR, &cursor, error)
      || !get_bool (root, "more", &page->more, error)
      || !get_array (root, "keys", TRUE, MAX_PULL * 2, &keys, error))
    return NULL;
  if (*cursor == '\0' || !is_base64url_text (cursor))
    {
      proto_error (error, _("\"cursor\" is not base64url"));
      return NULL;
    }
  page->cursor = g_strdup (cursor);
  page->changesets = parse_envelopes (changesets, error);
  if (page->changesets == NULL)
    return NULL;
  page->keys = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_dossier_keys_free);
  for (guint i = 0; keys != NULL && i < json_array_get_length (keys); i++)
    {
      JsonObject *o = array_object (keys, i, "keys", error);
      RelaisDossierKeys *entry;

      if (o == NULL)
        return NULL;
      entry = parse_dossier_keys (o, NULL, TRUE, error);
      if (entry == NULL)
        return NULL;
      g_ptr_array_add (page->keys, entry);
    }
  return g_steal_pointer (&page);
}

static GPtrArray *
parse_recovery (const char *body,
                gsize       len,
                GError    **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_dossier_keys_free);
  JsonArray *array;

  if (root == NULL || !get_array (root, "dossiers", FALSE, MAX_DOSSIERS, &array, error))
    return NULL;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *o = array_object (array, i, "dossiers", error);
      RelaisDossierKeys *entry;

      if (o == NULL)
        return NULL;
      entry = parse_dossier_keys (o, NULL, TRUE, error);
      if (entry == NULL)
        return NULL;
      g_ptr_array_add (out, entry);
    }
  return g_steal_pointer (&out);
}

void
relais_recovery_missing_free (RelaisRecoveryMissing *missing)
{
  if (missing == NULL)
    return;
  g_free (missing->dossier_id);
  g_free (missing->org);
  g_clear_pointer (&missing->epochs, g_array_unref);
  g_free (missing);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelaisRecoveryMissing, relais_recovery_missing_free)

/* {"missing":[{"dossier_id","org","recovery_key","epochs":[…]}]}: entries
 * strictly in order of (dossier, organisation), epochs strictly rising,
 * so that the caller's loop after the last entry always moves on. */
static GPtrArray *
parse_missing (const char *body,
               gsize       len,
               GError    **error)
{
  g_autoptr(JsonObject) root = parse_object (body, len, error);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) relais_recovery_missing_free);
  JsonArray *array;

  if (root == NULL || !get_array (root, "missing", FALSE, MAX_MISSING, &array, error))
    return NULL;
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *o = array_object (array, i, "missing", error);
      g_autoptr(RelaisRecoveryMissing) entry = g_new0 (RelaisRecoveryMissing, 1);
      const char *dossier_id, *org;
      JsonArray *epochs;

      if (o == NULL
          || !get_id (o, "dossier_id", &dossier_id, error)
          || !get_string (o, "org", FALSE, MAX_TEXT, &org, error)
          || !get_key (o, "recovery_key", entry->recovery_key, sizeof entry->recovery_key, error)
          || !get_array (o, "epochs", FALSE, MAX_MISSING_EPOCHS, &epochs, error))
        return NULL;
      if (*org == '\0')
        {
          proto_error (error, _("\"%s\" is empty"), "org");
          return NULL;
        }
      if (out->len > 0)
        {
          RelaisRecoveryMissing *last = g_ptr_array_index (out, out->len - 1);
          int order = strcmp (last->dossier_id, dossier_id);

          if (order > 0 || (order == 0 && strcmp (last->org, org) >= 0))
            {
              proto_error (error, _("the entries are out of order"));
              return NULL;
            }
        }
      if (json_array_get_length (epochs) == 0)
        {
          proto_error (error, _("\"%s\" is empty"), "epochs");
          return NULL;
        }
      entry->dossier_id = g_strdup (dossier_id);
      entry->org = g_strdup (org);
      entry->epochs = g_array_new (FALSE, FALSE, sizeof (guint32));
      for (guint j = 0; j < json_array_get_length (epochs); j++)
        {
          JsonNode *node = json_array_get_element (epochs, j);
          gint64 value;
          guint32 epoch;

          if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
            {
              proto_error (error, _("\"%s\" is not an integer"), "epochs");
              return NULL;
            }
          value = json_node_get_int (node);
          if (value < 1 || value > G_MAXUINT32
              || (j > 0 && (guint32) value <= g_array_index (entry->epochs, guint32, j - 1)))
            {
              proto_error (error, _("\"%s\" is out of range"), "epochs");
              return NULL;
            }
          epoch = (guint32) value;
          g_array_append_val (entry->epochs, epoch);
        }
      g_ptr_array_add (out, g_steal_pointer (&entry));
    }
  return g_steal_pointer (&out);
}

gboolean
relais_client_parse_answer (const char  *what,
                            const char  *body,
                            gsize        len,
                            GError     **error)
{
  g_return_val_if_fail (what != NULL, FALSE);
  g_return_val_if_fail (body != NULL || len == 0, FALSE);

  if (body == NULL)
    return proto_error (error, _("it is empty"));
  if (strcmp (what, "enrol") == 0)
    {
      g_autoptr(RelaisEnrolment) e = parse_enrol (body, len, error);
      return e != NULL;
    }
  if (strcmp (what, "users") == 0)
    {
      g_autoptr(GPtrArray) a = parse_users (body, len, error);
      return a != NULL;
    }
  if (strcmp (what, "keys") == 0)
    {
      g_autoptr(RelaisDossierKeys) k = parse_keys (body, len, NULL, error);
      return k != NULL;
    }
  if (strcmp (what, "push") == 0)
    {
      g_autoptr(GPtrArray) a = parse_push (body, len, error);
      return a != NULL;
    }
  if (strcmp (what, "pull") == 0)
    {
      g_autoptr(RelaisPullPage) p = parse_pull (body, len, MAX_PULL, error);
      return p != NULL;
    }
  if (strcmp (what, "recovery") == 0)
    {
      g_autoptr(GPtrArray) a = parse_recovery (body, len, error);
      return a != NULL;
    }
  if (strcmp (what, "missing") == 0)
    {
      g_autoptr(GPtrArray) a = parse_missing (body, len, error);
      return a != NULL;
    }
  if (strcmp (what, "error") == 0)
    {
      ErrorAnswer answer = { 0 };
      gboolean ok = parse_error (body, len, &answer, error);

      error_answer_clear (&answer);
      return ok;
    }
  g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
               _("There is no answer called “%s”."), what);
  return FALSE;
}

/* The spool keeps a dossier's keys in the form a pull brings them. */
static void
build_dossier_keys (JsonBuilder             *b,
                    const RelaisDossierKeys *keys)
{
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "dossier_id");
  json_builder_add_string_value (b, keys->dossier_id);
  json_builder_set_member_name (b, "epoch");
  json_builder_add_int_value (b, keys->epoch);
  json_builder_set_member_name (b, "epochs");
  json_builder_begin_array (b);
  for (guint i = 0; keys->keys != NULL && i < keys->keys->len; i++)
    {
      RelaisWrappedKey *k = g_ptr_array_index (keys->keys, i);
      gsize len;
      const guint8 *data = g_bytes_get_data (k->wrapped_key, &len);
      g_autofree char *text = relais_sync_base64_encode (data, len);

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "epoch");
      json_builder_add_int_value (b, k->epoch);
      json_builder_set_member_name (b, "wrapped_key");
      json_builder_add_string_value (b, text);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "members");
  json_builder_begin_array (b);
  for (guint i = 0; keys->members != NULL && i < keys->members->len; i++)
    {
      RelaisDossierMember *m = g_ptr_array_index (keys->members, i);
      g_autofree char *pk = relais_sync_base64_encode (m->sign_pk, sizeof m->sign_pk);

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "user_id");
      json_builder_add_string_value (b, m->user_id);
      json_builder_set_member_name (b, "sign_pk");
      json_builder_add_string_value (b, pk);
      json_builder_set_member_name (b, "since_epoch");
      json_builder_add_int_value (b, m->since_epoch);
      json_builder_set_member_name (b, "until_epoch");
      json_builder_add_int_value (b, m->until_epoch);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
}

static char *
builder_to_string (JsonBuilder *b)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  g_autoptr(JsonNode) root = json_builder_get_root (b);

  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

char *
relais_dossier_keys_to_json (const RelaisDossierKeys *keys)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  g_return_val_if_fail (keys != NULL && id_is_valid (keys->dossier_id), NULL);
  build_dossier_keys (b, keys);
  return builder_to_string (b);
}

RelaisDossierKeys *
relais_dossier_keys_from_json (const char  *text,
                               gsize        len,
                               GError     **error)
{
  g_autoptr(JsonObject) root = parse_object (text, len, error);

  if (root == NULL)
    return NULL;
  return parse_dossier_keys (root, NULL, TRUE, error);
}

/* The client ---------------------------------------------------------------- */

/* Parses @url with curl's own parser (the one that will connect), so the
 * host checked is the host reached: "http://127.1" is normalised before
 * the check, "http://127.0.0.1.example.org" is a name and refused. */
static char *
check_url (const char  *url,
           gboolean    *out_plain,
           GError     **error)
{
  CURLU *u = curl_url ();
  g_autofree char *scheme = NULL;
  g_autofree char *host = NULL;
  g_autofree char *port = NULL;
  char *part = NULL;
  const char *bare;
  gboolean plain, ok = FALSE;
  char *base = NULL;

  if (u == NULL)
    g_error ("out of memory");
  if (url == NULL || curl_url_set (u, CURLUPART_URL, url, 0) != CURLUE_OK)
    goto out;
  if (curl_url_get (u, CURLUPART_SCHEME, &part, 0) != CURLUE_OK)
    goto out;
  scheme = g_strdup (part);
  curl_free (part);
  if (curl_url_get (u, CURLUPART_HOST, &part, 0) != CURLUE_OK)
    goto out;
  host = g_strdup (part);
  curl_free (part);
  if (curl_url_get (u, CURLUPART_PORT, &part, 0) == CURLUE_OK)
    {
      port = g_strdup (part);
      curl_free (part);
    }
  /* A server URL is a scheme, a host and a port: credentials, a query or
   * a fragment would be sent or signed in ways the protocol does not say. */
  if (curl_url_get (u, CURLUPART_USER, &part, 0) == CURLUE_OK
      || curl_url_get (u, CURLUPART_PASSWORD, &part, 0) == CURLUE_OK
      || curl_url_get (u, CURLUPART_QUERY, &part, 0) == CURLUE_OK
      || curl_url_get (u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK
      || curl_url_get (u, CURLUPART_ZONEID, &part, 0) == CURLUE_OK)
    {
      curl_free (part);
      goto out;
    }
  if (curl_url_get (u, CURLUPART_PATH, &part, 0) == CURLUE_OK)
    {
      gboolean root = strcmp (part, "/") == 0 || *part == '\0';

      curl_free (part);
      if (!root)
        goto out;
    }

  if (g_ascii_strcasecmp (scheme, "https") == 0)
    plain = FALSE;
  else if (g_ascii_strcasecmp (scheme, "http") == 0)
    {
      g_autofree char *inner = NULL;
      g_autoptr(GInetAddress) address = NULL;

      plain = TRUE;
      bare = host;
      if (host[0] == '[' && g_str_has_suffix (host, "]"))
        bare = inner = g_strndup (host + 1, strlen (host) - 2);
      address = g_inet_address_new_from_string (bare);
      if (g_ascii_strcasecmp (bare, "localhost") != 0
          && (address == NULL || !g_inet_address_get_is_loopback (address)))
        {
          g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                       _("Plain http:// is accepted only to this computer (loopback); use https:// for “%s”."),
                       host);
          curl_url_cleanup (u);
          return NULL;
        }
    }
  else
    goto out;

  ok = TRUE;
  *out_plain = plain;
  base = port != NULL ? g_strdup_printf ("%s://%s:%s", plain ? "http" : "https", host, port)
                      : g_strdup_printf ("%s://%s", plain ? "http" : "https", host);

out:
  curl_url_cleanup (u);
  if (!ok)
    g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                         _("The server address must be https://HOST[:PORT] (or http:// to this computer)."));
  return base;
}

RelaisClient *
relais_client_new (const char  *server_url,
                   const char  *cacert,
                   GError     **error)
{
  static gsize curl_ready = 0;
  g_autofree char *base = NULL;
  gboolean plain = FALSE;
  RelaisClient *client;

  if (sodium_init () < 0)
    g_error ("libsodium failed to initialise");
  if (g_once_init_enter (&curl_ready))
    {
      curl_global_init (CURL_GLOBAL_DEFAULT);
      g_once_init_leave (&curl_ready, 1);
    }
  base = check_url (server_url, &plain, error);
  if (base == NULL)
    return NULL;
  if (cacert != NULL && !g_file_test (cacert, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                   _("The certificate file “%s” does not exist."), cacert);
      return NULL;
    }

  client = g_new0 (RelaisClient, 1);
  client->curl = curl_easy_init ();
  if (client->curl == NULL)
    g_error ("libcurl failed to make a handle");
  client->base = g_steal_pointer (&base);
  client->plain = plain;
  client->cacert = g_strdup (cacert);
  client->timeout = 60;
  return client;
}

void
relais_client_free (RelaisClient *client)
{
  if (client == NULL)
    return;
  g_clear_pointer (&client->curl, curl_easy_cleanup);
  g_free (client->base);
  g_free (client->cacert);
  g_free (client->device_id);
  if (client->device_sk != NULL)
    sodium_free (client->device_sk);
  g_free (client);
}

void
relais_client_set_device (RelaisClient *client,
                          const char   *device_id,
                          const guint8 *device_sk)
{
  g_return_if_fail (client != NULL);
  g_return_if_fail (id_is_valid (device_id));
  g_return_if_fail (device_sk != NULL);

  g_free (client->device_id);
  client->device_id = g_strdup (device_id);
  if (client->device_sk == NULL)
    {
      client->device_sk = sodium_malloc (crypto_sign_SECRETKEYBYTES);
      if (client->device_sk == NULL)
        g_error ("out of guarded memory");
    }
  memcpy (client->device_sk, device_sk, crypto_sign_SECRETKEYBYTES);
}

void
relais_client_set_timeout (RelaisClient *client,
                           guint         seconds)
{
  g_return_if_fail (client != NULL);
  client->timeout = MAX (seconds, 1);
}

/* Requests ------------------------------------------------------------------ */

typedef struct {
  GByteArray   *answer;
  gboolean      too_large;
  GCancellable *cancellable;
} Transfer;

static size_t
on_write (char   *data,
          size_t  size,
          size_t  n,
          void   *user_data)
{
  Transfer *t = user_data;
  gsize len = size * n;

  if (t->answer->len + len > ANSWER_MAX)
    {
      t->too_large = TRUE;
      return 0;       /* curl aborts the transfer: CURLE_WRITE_ERROR */
    }
  g_byte_array_append (t->answer, (const guint8 *) data, len);
  return len;
}

static int
on_progress (void       *user_data,
             curl_off_t  dltotal,
             curl_off_t  dlnow,
             curl_off_t  ultotal,
             curl_off_t  ulnow)
{
  Transfer *t = user_data;

  return g_cancellable_is_cancelled (t->cancellable) ? 1 : 0;
}

static struct curl_slist *
add_header (struct curl_slist *list,
            const char        *header)
{
  struct curl_slist *next = curl_slist_append (list, header);

  if (next == NULL)
    g_error ("out of memory");
  return next;
}

static struct curl_slist *
sign_request (RelaisClient      *client,
              struct curl_slist *headers,
              const char        *method,
              const char        *path,
              const char        *body,
              gsize              body_len)
{
  guint8 hash[crypto_hash_sha256_BYTES];
  char hash_hex[crypto_hash_sha256_BYTES * 2 + 1];
  guint8 nonce[16];
  guint8 signature[crypto_sign_BYTES];
  g_autofree char *nonce_text = NULL;
  g_autofree char *signature_text = NULL;
  g_autofree char *message = NULL;
  g_autofree char *header = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  crypto_hash_sha256 (hash, (const guint8 *) (body != NULL ? body : ""), body_len);
  sodium_bin2hex (hash_hex, sizeof hash_hex, hash, sizeof hash);
  randombytes_buf (nonce, sizeof nonce);
  nonce_text = relais_sync_base64_encode (nonce, sizeof nonce);
  message = g_strdup_printf ("relais-request-v1\n%s\n%s\n%" G_GINT64_FORMAT "\n%s\n%s",
                             method, path, now, nonce_text, hash_hex);
  crypto_sign_detached (signature, NULL, (const guint8 *) message, strlen (message),
                        client->device_sk);
  signature_text = relais_sync_base64_encode (signature, sizeof signature);

  header = g_strdup_printf ("Relais-Device: %s", client->device_id);
  headers = add_header (headers, header);
  g_free (header);
  header = g_strdup_printf ("Relais-Time: %" G_GINT64_FORMAT, now);
  headers = add_header (headers, header);
  g_free (header);
  header = g_strdup_printf ("Relais-Nonce: %s", nonce_text);
  headers = add_header (headers, header);
  g_free (header);
  header = g_strdup_printf ("Relais-Signature: %s", signature_text);
  return add_header (headers, header);
}

static void
set_curl_error (CURLcode  code,
                Transfer *t,
                GError  **error)
{
  if (code == CURLE_ABORTED_BY_CALLBACK && g_cancellable_is_cancelled (t->cancellable))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, _("The sync was cancelled."));
      return;
    }
  if (t->too_large || code == CURLE_FILESIZE_EXCEEDED)
    {
      proto_error (error, _("it is too large"));
      return;
    }
  switch (code)
    {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_TOO_MANY_REDIRECTS:
      g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                   _("The request could not be made: %s."), curl_easy_strerror (code));
      return;
    case CURLE_OPERATION_TIMEDOUT:
      g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK,
                           _("The server did not answer in time."));
      return;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
      g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK,
                   _("The server's certificate could not be verified: %s."),
                   curl_easy_strerror (code));
      return;
    default:
      /* Refused, reset, cut mid-body (PARTIAL_FILE, RECV_ERROR), no
       * route: the exchange did not complete, whatever was received. */
      g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_NETWORK,
                   _("The server could not be reached: %s."), curl_easy_strerror (code));
      return;
    }
}

typedef struct {
  const char         *code;
  long                status;
  RelaisClientError   error;
  const char         *text;   /* what the person reads, translated */
} CodeMap;

/* The server's messages are English sentences for its operator; the person
 * reads these instead, in their language. */
static const CodeMap code_map[] = {
  { "malformed", 400, RELAIS_CLIENT_ERROR_MALFORMED,
    N_("The server could not read the request.") },
  { "bad_base64", 400, RELAIS_CLIENT_ERROR_MALFORMED,
    N_("The server could not read the request.") },
  { "bad_signature", 401, RELAIS_CLIENT_ERROR_BAD_SIGNATURE,
    N_("The server did not recognise this computer's signature.") },
  { "unknown_device", 401, RELAIS_CLIENT_ERROR_BAD_SIGNATURE,
    N_("The server does not know this computer: connect it again with a new enrolment code.") },
  { "stale_request", 401, RELAIS_CLIENT_ERROR_CLOCK, NULL },
  { "device_revoked", 403, RELAIS_CLIENT_ERROR_REVOKED,
    N_("This computer's access was revoked by an administrator.") },
  { "not_member", 403, RELAIS_CLIENT_ERROR_FORBIDDEN,
    N_("You are not, or no longer, in this dossier's team.") },
  { "not_admin", 403, RELAIS_CLIENT_ERROR_FORBIDDEN,
    N_("Only an administrator of the organisation may do this.") },
  { "author_mismatch", 403, RELAIS_CLIENT_ERROR_FORBIDDEN,
    N_("These changes were signed by another identity than yours.") },
  { "not_found", 404, RELAIS_CLIENT_ERROR_NOT_FOUND,
    N_("The server does not know what was asked for.") },
  { "replayed", 409, RELAIS_CLIENT_ERROR_REPLAYED,
    N_("The server had already received this request; it will be sent again.") },
  { "id_conflict", 409, RELAIS_CLIENT_ERROR_CONFLICT,
    N_("The server already holds different changes under the same identifier.") },
  { "epoch_retired", 409, RELAIS_CLIENT_ERROR_CONFLICT,
    N_("The dossier's key was renewed meanwhile.") },
  { "code_used", 409, RELAIS_CLIENT_ERROR_CODE_USED,
    N_("This enrolment code was already used: ask the administrator for a new one.") },
  { "code_expired", 410, RELAIS_CLIENT_ERROR_CODE_EXPIRED,
    N_("This enrolment code has expired: ask the administrator for a new one.") },
  { "too_large", 413, RELAIS_CLIENT_ERROR_TOO_LARGE,
    N_("The request was too large for the server.") },
};

/* The status decides first where it is unambiguous (a retry, a success);
 * the code refines a refusal only when it belongs to that status, so that
 * a confused or hostile answer such as "409 device_revoked" never wipes a
 * vault. */
static void
set_http_error (long        status,
                const char *body,
                gsize       len,
                GError    **error)
{
  ErrorAnswer answer = { 0 };
  const char *text = NULL;
  RelaisClientError code;
  const char *message;

  if (len > 0 && !parse_error (body, len, &answer, NULL))
    error_answer_clear (&answer);

  if (status == 429 || (status >= 500 && status <= 599))
    {
      g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_UNAVAILABLE,
                   _("The server is busy or unavailable (HTTP %ld); try again later."), status);
      error_answer_clear (&answer);
      return;
    }

  switch (status)
    {
    case 400: code = RELAIS_CLIENT_ERROR_MALFORMED; break;
    case 401: code = RELAIS_CLIENT_ERROR_BAD_SIGNATURE; break;
    case 403: code = RELAIS_CLIENT_ERROR_FORBIDDEN; break;
    case 404: code = RELAIS_CLIENT_ERROR_NOT_FOUND; break;
    case 409: code = RELAIS_CLIENT_ERROR_CONFLICT; break;
    case 410: code = RELAIS_CLIENT_ERROR_CODE_EXPIRED; break;
    case 413: code = RELAIS_CLIENT_ERROR_TOO_LARGE; break;
    default:
      g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_PROTOCOL,
                   _("The server gave an unexpected answer (HTTP %ld)."), status);
      error_answer_clear (&answer);
      return;
    }
  for (gsize i = 0; answer.code != NULL && i < G_N_ELEMENTS (code_map); i++)
    if (strcmp (answer.code, code_map[i].code) == 0 && code_map[i].status == status)
      {
        code = code_map[i].error;
        text = code_map[i].text;
      }

  message = answer.message != NULL && *answer.message != '\0' ? answer.message : NULL;
  if (code == RELAIS_CLIENT_ERROR_CLOCK && answer.server_time > 0)
    {
      /* Say by how much, so that the person can set the clock right. */
      gint64 skew = g_get_real_time () / G_USEC_PER_SEC - answer.server_time;
      int minutes = (int) MIN (ABS (skew) / 60, G_MAXINT);

      if (skew > 0)
        g_set_error (error, RELAIS_CLIENT_ERROR, code,
                     _("This computer's clock is %d minutes ahead of the server's: set it right and sync again."),
                     minutes);
      else
        g_set_error (error, RELAIS_CLIENT_ERROR, code,
                     _("This computer's clock is %d minutes behind the server's: set it right and sync again."),
                     minutes);
    }
  else if (text != NULL)
    g_set_error_literal (error, RELAIS_CLIENT_ERROR, code, _(text));
  else if (message != NULL)
    g_set_error (error, RELAIS_CLIENT_ERROR, code, _("The server refused the request: %s"), message);
  else
    g_set_error (error, RELAIS_CLIENT_ERROR, code,
                 _("The server refused the request (HTTP %ld)."), status);
  error_answer_clear (&answer);
}

/* One exchange.  Returns the answer of a 2xx, or NULL with an error. */
static GByteArray *
request (RelaisClient  *client,
         const char    *method,
         const char    *path,
         const char    *body,
         gboolean       sign,
         long          *out_status,
         GCancellable  *cancellable,
         GError       **error)
{
  g_autoptr(GByteArray) answer = g_byte_array_new ();
  g_autofree char *url = g_strconcat (client->base, path, NULL);
  struct curl_slist *headers = NULL;
  Transfer t = { answer, FALSE, cancellable };
  gsize body_len = body != NULL ? strlen (body) : 0;
  CURL *c = client->curl;
  CURLcode code;
  long status = 0;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;
  if (sign && client->device_id == NULL)
    {
      g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                           _("This device is not enrolled."));
      return NULL;
    }

  /* reset keeps the live connections: one TLS handshake per client. */
  curl_easy_reset (c);
  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (client->cacert != NULL)
    curl_easy_setopt (c, CURLOPT_CAINFO, client->cacert);
  /* Loopback needs no proxy, and must not go through one: http_proxy in
   * the environment would carry the plain request off this computer. */
  if (client->plain)
    curl_easy_setopt (c, CURLOPT_PROXY, "");
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, (long) MIN (CONNECT_TIMEOUT, client->timeout));
  curl_easy_setopt (c, CURLOPT_TIMEOUT, (long) client->timeout);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, (long) MIN (STALL_TIME, client->timeout));
  curl_easy_setopt (c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) ANSWER_MAX);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (c, CURLOPT_USERAGENT, "relais/1");

  headers = add_header (headers, "Accept: application/json");
  /* No "100 Continue" round trip before each push. */
  headers = add_header (headers, "Expect:");
  if (strcmp (method, "GET") == 0)
    curl_easy_setopt (c, CURLOPT_HTTPGET, 1L);
  else
    {
      curl_easy_setopt (c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
      curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
      if (strcmp (method, "POST") != 0)
        curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, method);
      if (body != NULL)
        headers = add_header (headers, "Content-Type: application/json");
    }
  if (sign)
    headers = sign_request (client, headers, method, path, body, body_len);
  curl_easy_setopt (c, CURLOPT_HTTPHEADER, headers);

  code = curl_easy_perform (c);
  curl_easy_setopt (c, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all (headers);
  if (code != CURLE_OK)
    {
      set_curl_error (code, &t, error);
      return NULL;
    }
  curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
  if (out_status != NULL)
    *out_status = status;
  if (status < 200 || status > 299)
    {
      set_http_error (status, (const char *) answer->data, answer->len, error);
      return NULL;
    }
  return g_steal_pointer (&answer);
}

/* A request whose answer is a JSON object parsed by the caller. */
#define ANSWER_TEXT(a) ((const char *) (a)->data), ((a)->len)

static gboolean
request_empty (RelaisClient  *client,
               const char    *method,
               const char    *path,
               JsonBuilder   *body,
               GCancellable  *cancellable,
               GError       **error)
{
  g_autofree char *text = body != NULL ? builder_to_string (body) : NULL;
  g_autoptr(GByteArray) answer = request (client, method, path, text, TRUE, NULL,
                                          cancellable, error);

  return answer != NULL;
}

static void
add_b64_member (JsonBuilder  *b,
                const char   *name,
                const guint8 *data,
                gsize         len)
{
  g_autofree char *text = relais_sync_base64_encode (data, len);

  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, text);
}

static void
add_bytes_member (JsonBuilder *b,
                  const char  *name,
                  GBytes      *bytes)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  add_b64_member (b, name, data, len);
}

static gboolean
check_id_arg (const char  *id,
              GError     **error)
{
  if (id_is_valid (id))
    return TRUE;
  g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                       _("An id is not valid."));
  return FALSE;
}

/* Endpoints ------------------------------------------------------------------ */

gboolean
relais_client_health (RelaisClient  *client,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_autoptr(GByteArray) answer = request (client, "GET", "/v1/health", NULL, FALSE, NULL,
                                          cancellable, error);
  g_autoptr(JsonObject) root = NULL;
  const char *status;
  guint64 version;

  if (answer == NULL)
    return FALSE;
  root = parse_object (ANSWER_TEXT (answer), error);
  if (root == NULL
      || !get_string (root, "status", FALSE, 16, &status, error)
      || !get_uint (root, "version", FALSE, G_MAXUINT32, &version, error))
    return FALSE;
  if (strcmp (status, "ok") != 0 || version != 1)
    return proto_error (error, _("the server does not speak protocol version 1"));
  return TRUE;
}

RelaisEnrolment *
relais_client_enrol (RelaisClient  *client,
                     const char    *code,
                     const char    *device_name,
                     const guint8  *device_pk,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(GByteArray) answer = NULL;
  g_autofree char *body = NULL;

  g_return_val_if_fail (code != NULL && device_name != NULL && device_pk != NULL, NULL);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "code");
  json_builder_add_string_value (b, code);
  json_builder_set_member_name (b, "device_name");
  json_builder_add_string_value (b, device_name);
  add_b64_member (b, "device_key", device_pk, crypto_sign_PUBLICKEYBYTES);
  json_builder_end_object (b);
  body = builder_to_string (b);

  answer = request (client, "POST", "/v1/enrol", body, FALSE, NULL, cancellable, error);
  if (answer == NULL)
    return NULL;
  return parse_enrol (ANSWER_TEXT (answer), error);
}

gboolean
relais_client_put_keys (RelaisClient  *client,
                        const guint8  *box_pk,
                        const guint8  *sign_pk,
                        GBytes        *wrapped_user_keys,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  g_return_val_if_fail (box_pk != NULL && sign_pk != NULL && wrapped_user_keys != NULL, FALSE);

  json_builder_begin_object (b);
  add_b64_member (b, "box_pk", box_pk, crypto_box_PUBLICKEYBYTES);
  add_b64_member (b, "sign_pk", sign_pk, crypto_sign_PUBLICKEYBYTES);
  add_bytes_member (b, "wrapped_user_keys", wrapped_user_keys);
  json_builder_end_object (b);
  return request_empty (client, "PUT", "/v1/me/keys", b, cancellable, error);
}

GPtrArray *
relais_client_users (RelaisClient  *client,
                     const char    *org,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_autofree char *escaped = org != NULL ? g_uri_escape_string (org, NULL, FALSE) : NULL;
  g_autofree char *path = org != NULL ? g_strconcat ("/v1/users?org=", escaped, NULL)
                                      : g_strdup ("/v1/users");
  g_autoptr(GByteArray) answer = request (client, "GET", path, NULL, TRUE, NULL,
                                          cancellable, error);

  if (answer == NULL)
    return NULL;
  return parse_users (ANSWER_TEXT (answer), error);
}

static void
add_members (JsonBuilder *b,
             const char  *name,
             GPtrArray   *members,
             gboolean     with_epoch)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (guint i = 0; members != NULL && i < members->len; i++)
    {
      RelaisWrappedKey *k = g_ptr_array_index (members, i);

      json_builder_begin_object (b);
      if (k->user_id != NULL)
        {
          json_builder_set_member_name (b, "user_id");
          json_builder_add_string_value (b, k->user_id);
        }
      if (with_epoch)
        {
          json_builder_set_member_name (b, "epoch");
          json_builder_add_int_value (b, k->epoch);
        }
      add_bytes_member (b, "wrapped_key", k->wrapped_key);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

static gboolean
check_wrapped_keys (GPtrArray  *keys,
                    gboolean    need_user,
                    GError    **error)
{
  for (guint i = 0; keys != NULL && i < keys->len; i++)
    {
      RelaisWrappedKey *k = g_ptr_array_index (keys, i);

      if ((need_user && !id_is_valid (k->user_id)) || k->wrapped_key == NULL)
        {
          g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                               _("A wrapped key is not valid."));
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
relais_client_dossier_create (RelaisClient  *client,
                              const char    *dossier_id,
                              GPtrArray     *members,
                              GBytes        *recovery_wrapped_key,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  if (!check_id_arg (dossier_id, error) || !check_wrapped_keys (members, TRUE, error))
    return FALSE;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "dossier_id");
  json_builder_add_string_value (b, dossier_id);
  json_builder_set_member_name (b, "epoch");
  json_builder_add_int_value (b, 1);
  add_members (b, "members", members, FALSE);
  if (recovery_wrapped_key != NULL)
    add_bytes_member (b, "recovery_wrapped_key", recovery_wrapped_key);
  json_builder_end_object (b);
  return request_empty (client, "POST", "/v1/dossiers", b, cancellable, error);
}

RelaisDossierKeys *
relais_client_dossier_keys (RelaisClient  *client,
                            const char    *dossier_id,
                            GCancellable  *cancellable,
                            GError       **error)
{
  g_autofree char *path = NULL;
  g_autoptr(GByteArray) answer = NULL;

  if (!check_id_arg (dossier_id, error))
    return NULL;
  path = g_strdup_printf ("/v1/dossiers/%s/keys", dossier_id);
  answer = request (client, "GET", path, NULL, TRUE, NULL, cancellable, error);
  if (answer == NULL)
    return NULL;
  return parse_keys (ANSWER_TEXT (answer), dossier_id, error);
}

static gboolean
post_grant (RelaisClient  *client,
            const char    *path,
            const char    *user_id,
            GPtrArray     *keys,
            GCancellable  *cancellable,
            GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  if (!check_id_arg (user_id, error) || !check_wrapped_keys (keys, FALSE, error))
    return FALSE;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "user_id");
  json_builder_add_string_value (b, user_id);
  json_builder_set_member_name (b, "wrapped_keys");
  json_builder_begin_array (b);
  for (guint i = 0; keys != NULL && i < keys->len; i++)
    {
      RelaisWrappedKey *k = g_ptr_array_index (keys, i);

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "epoch");
      json_builder_add_int_value (b, k->epoch);
      add_bytes_member (b, "wrapped_key", k->wrapped_key);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return request_empty (client, "POST", path, b, cancellable, error);
}

gboolean
relais_client_dossier_share (RelaisClient  *client,
                             const char    *dossier_id,
                             const char    *user_id,
                             GPtrArray     *keys,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_autofree char *path = NULL;

  if (!check_id_arg (dossier_id, error))
    return FALSE;
  path = g_strdup_printf ("/v1/dossiers/%s/share", dossier_id);
  return post_grant (client, path, user_id, keys, cancellable, error);
}

gboolean
relais_client_dossier_unshare (RelaisClient  *client,
                               const char    *dossier_id,
                               const char    *user_id,
                               guint32        new_epoch,
                               GPtrArray     *members,
                               GBytes        *recovery_wrapped_key,
                               GCancellable  *cancellable,
                               GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *path = NULL;

  if (!check_id_arg (dossier_id, error) || !check_id_arg (user_id, error)
      || !check_wrapped_keys (members, TRUE, error))
    return FALSE;
  path = g_strdup_printf ("/v1/dossiers/%s/unshare", dossier_id);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "user_id");
  json_builder_add_string_value (b, user_id);
  json_builder_set_member_name (b, "epoch");
  json_builder_add_int_value (b, new_epoch);
  add_members (b, "members", members, FALSE);
  if (recovery_wrapped_key != NULL)
    add_bytes_member (b, "recovery_wrapped_key", recovery_wrapped_key);
  json_builder_end_object (b);
  return request_empty (client, "POST", path, b, cancellable, error);
}

GPtrArray *
relais_client_push (RelaisClient  *client,
                    GPtrArray     *envelopes,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autoptr(GByteArray) answer = NULL;
  g_autoptr(GPtrArray) results = NULL;
  g_autofree guint8 *ids = NULL;
  g_autofree char *body = NULL;

  g_return_val_if_fail (envelopes != NULL, NULL);
  if (envelopes->len == 0 || envelopes->len > MAX_PUSH)
    {
      g_set_error (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                   _("A push carries 1 to %d change sets."), MAX_PUSH);
      return NULL;
    }
  ids = g_malloc (envelopes->len * RELAIS_CHANGESET_ID_SIZE);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "changesets");
  json_builder_begin_array (b);
  for (guint i = 0; i < envelopes->len; i++)
    {
      g_auto(RelaisChangesetHeader) header = { 0 };
      gsize len;
      const guint8 *data = g_bytes_get_data (g_ptr_array_index (envelopes, i), &len);
      g_autofree char *text = NULL;

      if (!relais_changeset_peek (data, len, &header, NULL))
        {
          g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                               _("A change set to push is not an envelope."));
          return NULL;
        }
      memcpy (ids + i * RELAIS_CHANGESET_ID_SIZE, header.id, RELAIS_CHANGESET_ID_SIZE);
      text = relais_sync_base64_encode (data, len);
      json_builder_add_string_value (b, text);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  body = builder_to_string (b);

  answer = request (client, "POST", "/v1/changesets", body, TRUE, NULL, cancellable, error);
  if (answer == NULL)
    return NULL;
  results = parse_push (ANSWER_TEXT (answer), error);
  if (results == NULL)
    return NULL;
  /* The caller deletes what the server says it stored: an answer about
   * other change sets than those sent must not delete anything. */
  if (results->len != envelopes->len)
    {
      proto_error (error, _("it has %u results for %u change sets"), results->len, envelopes->len);
      return NULL;
    }
  for (guint i = 0; i < results->len; i++)
    {
      RelaisPushResult *r = g_ptr_array_index (results, i);

      if (memcmp (r->id, ids + i * RELAIS_CHANGESET_ID_SIZE, RELAIS_CHANGESET_ID_SIZE) != 0)
        {
          proto_error (error, _("a result is for another change set"));
          return NULL;
        }
    }
  return g_steal_pointer (&results);
}

RelaisPullPage *
relais_client_pull (RelaisClient  *client,
                    const char    *cursor,
                    guint          limit,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autofree char *path = NULL;
  g_autoptr(GByteArray) answer = NULL;

  if (limit == 0 || limit > MAX_PULL
      || (cursor != NULL && (*cursor == '\0' || strlen (cursor) > MAX_CURSOR
                             || !is_base64url_text (cursor))))
    {
      g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                           _("The pull's cursor or limit is not valid."));
      return NULL;
    }
  path = cursor != NULL ? g_strdup_printf ("/v1/changesets?cursor=%s&limit=%u", cursor, limit)
                        : g_strdup_printf ("/v1/changesets?limit=%u", limit);
  answer = request (client, "GET", path, NULL, TRUE, NULL, cancellable, error);
  if (answer == NULL)
    return NULL;
  return parse_pull (ANSWER_TEXT (answer), limit, error);
}

gboolean
relais_client_admin_set_recovery_key (RelaisClient  *client,
                                      const char    *org,
                                      const guint8  *box_pk,
                                      GCancellable  *cancellable,
                                      GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();

  g_return_val_if_fail (org != NULL && box_pk != NULL, FALSE);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "org");
  json_builder_add_string_value (b, org);
  add_b64_member (b, "box_pk", box_pk, crypto_box_PUBLICKEYBYTES);
  json_builder_end_object (b);
  return request_empty (client, "POST", "/v1/admin/recovery-key", b, cancellable, error);
}

gboolean
relais_client_admin_revoke (RelaisClient  *client,
                            const char    *device_id,
                            GCancellable  *cancellable,
                            GError       **error)
{
  g_autofree char *path = NULL;

  if (!check_id_arg (device_id, error))
    return FALSE;
  path = g_strdup_printf ("/v1/admin/devices/%s/revoke", device_id);
  return request_empty (client, "POST", path, NULL, cancellable, error);
}

GPtrArray *
relais_client_admin_recovery (RelaisClient  *client,
                              const char    *user_id,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_autofree char *path = NULL;
  g_autoptr(GByteArray) answer = NULL;

  if (!check_id_arg (user_id, error))
    return NULL;
  path = g_strdup_printf ("/v1/admin/recovery/%s", user_id);
  answer = request (client, "GET", path, NULL, TRUE, NULL, cancellable, error);
  if (answer == NULL)
    return NULL;
  return parse_recovery (ANSWER_TEXT (answer), error);
}

gboolean
relais_client_admin_grant (RelaisClient  *client,
                           const char    *dossier_id,
                           const char    *user_id,
                           GPtrArray     *keys,
                           GCancellable  *cancellable,
                           GError       **error)
{
  g_autofree char *path = NULL;

  if (!check_id_arg (dossier_id, error))
    return FALSE;
  path = g_strdup_printf ("/v1/admin/dossiers/%s/grant", dossier_id);
  return post_grant (client, path, user_id, keys, cancellable, error);
}

GPtrArray *
relais_client_recovery_missing (RelaisClient  *client,
                                const char    *after_dossier,
                                const char    *after_org,
                                GCancellable  *cancellable,
                                GError       **error)
{
  g_autofree char *path = NULL;
  g_autoptr(GByteArray) answer = NULL;

  if ((after_dossier == NULL) != (after_org == NULL)
      || (after_dossier != NULL && !id_is_valid (after_dossier))
      || (after_org != NULL && (*after_org == '\0' || strlen (after_org) > MAX_TEXT)))
    {
      g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                           _("An id is not valid."));
      return NULL;
    }
  if (after_dossier != NULL)
    {
      g_autofree char *org = g_uri_escape_string (after_org, NULL, FALSE);

      path = g_strdup_printf ("/v1/recovery/missing?after=%s&after_org=%s", after_dossier, org);
    }
  else
    path = g_strdup ("/v1/recovery/missing");
  answer = request (client, "GET", path, NULL, TRUE, NULL, cancellable, error);
  if (answer == NULL)
    return NULL;
  return parse_missing (ANSWER_TEXT (answer), error);
}

gboolean
relais_client_recovery_add (RelaisClient  *client,
                            const char    *dossier_id,
                            const char    *org,
                            GPtrArray     *keys,
                            GCancellable  *cancellable,
                            GError       **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  g_autofree char *path = NULL;

  if (!check_id_arg (dossier_id, error) || !check_wrapped_keys (keys, FALSE, error))
    return FALSE;
  if (org == NULL || *org == '\0' || keys == NULL || keys->len == 0)
    {
      g_set_error_literal (error, RELAIS_CLIENT_ERROR, RELAIS_CLIENT_ERROR_INVALID,
                           _("A wrapped key is not valid."));
      return FALSE;
    }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "org");
  json_builder_add_string_value (b, org);
  json_builder_set_member_name (b, "wrapped_keys");
  json_builder_begin_array (b);
  for (guint i = 0; i < keys->len; i++)
    {
      RelaisWrappedKey *k = g_ptr_array_index (keys, i);

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "epoch");
      json_builder_add_int_value (b, k->epoch);
      add_bytes_member (b, "wrapped_key", k->wrapped_key);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  path = g_strdup_printf ("/v1/dossiers/%s/recovery", dossier_id);
  return request_empty (client, "POST", path, b, cancellable, error);
}
