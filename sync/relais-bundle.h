#pragma once

#include <glib.h>

#include "relais-sync-error.h"

G_BEGIN_DECLS

/* A bundle: sealed change sets in a file, for a USB stick (PROTOCOL.md,
 * "Bundles").  The checksum catches a damaged file; authenticity comes
 * from each change set's own signature and seal. */

#define RELAIS_BUNDLE_MAX_CHANGESETS 1000000
#define RELAIS_BUNDLE_MAX_SIZE       ((gsize) 1 << 31)

/* @changesets: element type GBytes, each a change-set envelope. */
GBytes    *relais_bundle_build (GPtrArray    *changesets,
                                GError      **error);
/* Returns the envelopes (element type GBytes, slices of @data's copy).
 * Never reads outside @data; checks every length and the checksum. */
GPtrArray *relais_bundle_parse (const guint8 *data,
                                gsize         len,
                                GError      **error);

G_END_DECLS
