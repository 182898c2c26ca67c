/*
 * Internals shared by the crypto module's files (crypto__ prefix).
 */
#ifndef CERTHERD_CRYPTO_INTERNAL_H
#define CERTHERD_CRYPTO_INTERNAL_H

/* Log OpenSSL's first queued error at debug level under `what`, then
 * empty the queue so a later failure is not blamed on this one. */
void crypto__drain_errors(const char *what);

#endif
