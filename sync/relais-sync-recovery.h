#pragma once

#include <gio/gio.h>

#include "relais-client.h"
#include "relais-vault.h"

G_BEGIN_DECLS

/* Filling the recovery wraps other organisations lack (PROTOCOL.md §5.2,
 * "Filling recovery wraps").  A dossier gets at creation and at each
 * rotation the recovery wrap of the acting member's organisation only, and
 * only when that device learnt the key at enrolment: a member of another
 * organisation, or an organisation that sets its key later, would find
 * nothing to recover after a forgotten passphrase.
 *
 * Asks the server what is missing for the dossiers of this vault's user,
 * wraps every epoch key the vault holds to the organisation's recovery key
 * and posts them; epochs the vault does not hold are skipped (another
 * member fills them).  For this device's own organisation, when the vault
 * learnt its recovery key at enrolment, a different key offered by the
 * server is refused (the entry is skipped).  *@out_filled: the wraps the
 * server took.  Reads the vault only: call it on the thread that owns it.
 * Fails on a network or server error; refusals of one dossier (it changed
 * meanwhile) skip that dossier. */
gboolean relais_sync_fill_recovery (RelaisVault   *vault,
                                    RelaisClient  *client,
                                    guint         *out_filled,
                                    GCancellable  *cancellable,
                                    GError       **error);

G_END_DECLS
