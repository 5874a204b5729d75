#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Errors of the vault and of everything stored in it.  Messages carried by
 * these errors are shown to people as they are: they are one sentence, say
 * what to do where there is something to do, and never contain personal
 * data (no names, dates of birth, phone numbers… only line numbers, ids and
 * field names). */
#define RELAIS_VAULT_ERROR (relais_vault_error_quark ())

typedef enum {
  RELAIS_VAULT_ERROR_FAILED,
  RELAIS_VAULT_ERROR_NO_VAULT,       /* no vault in that directory */
  RELAIS_VAULT_ERROR_EXISTS,         /* a vault already exists there */
  RELAIS_VAULT_ERROR_BAD_PASSPHRASE, /* wrong passphrase or recovery key */
  RELAIS_VAULT_ERROR_DAMAGED,        /* a page or the key file failed authentication */
  RELAIS_VAULT_ERROR_BUSY,           /* opened by another program */
  RELAIS_VAULT_ERROR_FULL,           /* disk full */
  RELAIS_VAULT_ERROR_IO,             /* other input/output error */
  RELAIS_VAULT_ERROR_INVALID,        /* bad input from the caller (a date, an id…) */
  RELAIS_VAULT_ERROR_NOT_FOUND,      /* no such dossier / record */
} RelaisVaultError;

GQuark relais_vault_error_quark (void);

G_END_DECLS
