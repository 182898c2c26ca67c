/*
 * nginx_verify.c — ask nginx which certificate it serves for a name: a
 * TLS handshake with that SNI, and the leaf's serial. After a reload the
 * engine compares it with the certificate it just stored, so a reload
 * that nginx did not apply (a worker still old, a key nginx cannot read,
 * another server block claiming the name) is seen and reported instead
 * of being assumed.
 *
 * Blocking, with timeouts: the engine runs it on the thread pool.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "crypto/crypto.h"
#include "nginx/nginx.h"

/* TCP connect to host:port within timeout_ms; the socket (blocking, with
 * send/receive timeouts of timeout_ms) or a negative errno. */
static int dial(const char *host, unsigned port, int timeout_ms)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	struct pollfd pfd;
	socklen_t sl;
	int fd, rc, soerr = 0;

	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		sl = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*v6);
	} else {
		return -EINVAL;
	}
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&ss, sl);
	if (rc < 0 && errno == EINPROGRESS) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		rc = poll(&pfd, 1, timeout_ms);
		if (rc == 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		sl = sizeof(soerr);
		if (rc < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		rc = soerr ? -1 : 0;
		errno = soerr;
	}
	if (rc < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (fcntl(fd, F_SETFL, 0) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int nginx_verify_serial(const char *host, unsigned port, const char *sni,
			int timeout_ms, char *serial, size_t serialsz,
			char *err, size_t errsz)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	X509 *leaf = NULL;
	struct x509_info info = {0};
	int fd, rc = -EIO;

	fd = dial(host, port, timeout_ms);
	if (fd < 0) {
		snprintf(err, errsz, "cannot connect to %s port %u: %s", host,
			 port, strerror(-fd));
		return fd;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	ssl = ctx ? SSL_new(ctx) : NULL;
	if (!ssl || !SSL_set_fd(ssl, fd) ||
	    !SSL_set_tlsext_host_name(ssl, sni)) {
		snprintf(err, errsz, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	/* which certificate, not whether we trust it: no verification */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (SSL_connect(ssl) != 1) {
		unsigned long e = ERR_peek_last_error();

		snprintf(err, errsz,
			 "TLS handshake with %s port %u for %s "
			 "failed: %s",
			 host, port, sni,
			 e ? ERR_reason_error_string(e) : "connection closed");
		goto out;
	}
	leaf = SSL_get1_peer_certificate(ssl);
	if (!leaf || x509_inspect(leaf, &info) < 0) {
		snprintf(err, errsz,
			 "%s port %u sent no readable certificate "
			 "for %s",
			 host, port, sni);
		goto out;
	}
	snprintf(serial, serialsz, "%s", info.serial);
	rc = 0;
out:
	ERR_clear_error();
	x509_info_free(&info);
	X509_free(leaf);
	if (ssl)
		SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return rc;
}
