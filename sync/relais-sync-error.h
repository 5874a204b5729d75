#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Errors of the sync layer: change sets, keys and bundles.  Each check
 * that can refuse input has its own code, so that a peer can say which one
 * failed ("the signature does not match its author", not "bad data"). */
#define RELAIS_SYNC_ERROR (relais_sync_error_quark ())

typedef enum {
  RELAIS_SYNC_ERROR_FAILED,
  RELAIS_SYNC_ERROR_MALFORMED,        /* not a well-formed envelope, key or bundle */
  RELAIS_SYNC_ERROR_TOO_LARGE,        /* over a limit of PROTOCOL.md */
  RELAIS_SYNC_ERROR_SIGNATURE,        /* the Ed25519 signature does not verify */
  RELAIS_SYNC_ERROR_AUTHOR_UNKNOWN,   /* signed by a key that is not a member's */
  RELAIS_SYNC_ERROR_SEAL,             /* XChaCha20-Poly1305 authentication failed */
  RELAIS_SYNC_ERROR_DOSSIER_MISMATCH, /* sealed for another dossier */
  RELAIS_SYNC_ERROR_EPOCH_UNKNOWN,    /* no dossier key for that epoch */
  RELAIS_SYNC_ERROR_BAD_PASSPHRASE,   /* the passphrase does not unwrap the user's keys */
  RELAIS_SYNC_ERROR_CHECKSUM,         /* a bundle's checksum does not match */
  RELAIS_SYNC_ERROR_INVALID,          /* bad input from the caller */
} RelaisSyncError;

GQuark relais_sync_error_quark (void);

G_END_DECLS
