#define G_LOG_DOMAIN "relais-sync"

#include "config.h"

#include <string.h>
#include <sodium.h>

#include "relais-bundle.h"
#include "relais-changeset.h"

/*   0  8  magic "RLBUNDLE"
 *   8  1  version 1
 *   9  3  reserved 0
 *  12  4  count N, u32 LE
 *  16  …  N × (u32 LE length L, L bytes of envelope)
 *  end 32 BLAKE2b-256 of every byte before it */
#define MAGIC "RLBUNDLE"
#define HEAD 16
#define SUM  32

static void
put_u32 (guint8 *p, guint32 v)
{
  p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static guint32
get_u32 (const guint8 *p)
{
  return (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

GBytes *
relais_bundle_build (GPtrArray  *changesets,
                     GError    **error)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  guint8 head[HEAD] = { 0 };
  guint8 sum[SUM];

  if (changesets->len > RELAIS_BUNDLE_MAX_CHANGESETS)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                           "Too many change sets for one bundle.");
      return NULL;
    }
  memcpy (head, MAGIC, 8);
  head[8] = 1;
  put_u32 (head + 12, changesets->len);
  g_byte_array_append (out, head, HEAD);
  for (guint i = 0; i < changesets->len; i++)
    {
      gsize len;
      const guint8 *data = g_bytes_get_data (g_ptr_array_index (changesets, i), &len);
      guint8 l[4];

      if (len > RELAIS_CHANGESET_MAX_SIZE || out->len + 4 + len + SUM > RELAIS_BUNDLE_MAX_SIZE)
        {
          g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                               "The bundle would be too large.");
          return NULL;
        }
      put_u32 (l, len);
      g_byte_array_append (out, l, 4);
      g_byte_array_append (out, data, len);
    }
  crypto_generichash (sum, SUM, out->data, out->len, NULL, 0);
  g_byte_array_append (out, sum, SUM);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

GPtrArray *
relais_bundle_parse (const guint8  *data,
                     gsize          len,
                     GError       **error)
{
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(GBytes) copy = NULL;
  guint8 sum[SUM];
  guint32 count;
  gsize pos = HEAD, end;

  if (len > RELAIS_BUNDLE_MAX_SIZE)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_TOO_LARGE,
                           "The bundle is too large.");
      return NULL;
    }
  if (data == NULL || len < HEAD + SUM || memcmp (data, MAGIC, 8) != 0
      || data[8] != 1 || data[9] != 0 || data[10] != 0 || data[11] != 0)
    goto malformed;
  end = len - SUM;
  crypto_generichash (sum, SUM, data, end, NULL, 0);
  if (sodium_memcmp (sum, data + end, SUM) != 0)
    {
      g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_CHECKSUM,
                           "The bundle is damaged: its checksum does not match.");
      return NULL;
    }
  count = get_u32 (data + 12);
  /* Each entry takes at least 4 bytes: no allocation for a count that lies. */
  if (count > RELAIS_BUNDLE_MAX_CHANGESETS || count > (end - HEAD) / 4)
    goto malformed;
  copy = g_bytes_new (data, len);
  list = g_ptr_array_new_full (count, (GDestroyNotify) g_bytes_unref);
  for (guint32 i = 0; i < count; i++)
    {
      guint32 l;

      if (end - pos < 4)
        goto malformed;
      l = get_u32 (data + pos);
      pos += 4;
      if (l > RELAIS_CHANGESET_MAX_SIZE || end - pos < l)
        goto malformed;
      g_ptr_array_add (list, g_bytes_new_from_bytes (copy, pos, l));
      pos += l;
    }
  if (pos != end)
    goto malformed;
  return g_steal_pointer (&list);

malformed:
  g_set_error_literal (error, RELAIS_SYNC_ERROR, RELAIS_SYNC_ERROR_MALFORMED,
                       "The file is not a well-formed bundle.");
  return NULL;
}
