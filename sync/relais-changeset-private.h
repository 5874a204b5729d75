#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Between relais-changeset.c and the sync engine only.
 *
 * Checking an envelope's signature is pure arithmetic on its bytes (about
 * 63 µs), while opening it needs the vault.  relais_changeset_verify_ahead()
 * checks the signature on another thread and remembers a good one by the
 * BLAKE2b digest of the whole envelope; relais_changeset_open() of those
 * very bytes then skips the check (it still asks whether the key is a
 * member's first).  Thread-safe.  relais_changeset_forget_verified() drops
 * what no open used (envelopes refused before their signature mattered). */
void relais_changeset_verify_ahead      (const guint8 *data,
                                         gsize         len);
void relais_changeset_forget_verified   (void);

G_END_DECLS
