#pragma once

#include <adwaita.h>

#include "relais-vault.h"

G_BEGIN_DECLS

#define RELAIS_TYPE_PERSON_DIALOG (relais_person_dialog_get_type ())

G_DECLARE_FINAL_TYPE (RelaisPersonDialog, relais_person_dialog, RELAIS, PERSON_DIALOG, AdwWindow)

/* A dialog to create a dossier (@id NULL) or edit the identity and contact
 * of dossier @id.  It validates every field as the core does, warns when
 * the same person already has a dossier, writes through the core, then
 * emits ::saved and closes.  @vault must stay open while it is shown: the
 * window that owns the vault closes its dialogs before locking. */
RelaisPersonDialog *relais_person_dialog_new (GtkWindow   *parent,
                                              RelaisVault *vault,
                                              const char  *id);

G_END_DECLS
