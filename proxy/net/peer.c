#include "proxy/net/peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

void peer_format_ip(const struct sockaddr *sa, char *out, size_t cap)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)cap);
	} else if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
	} else {
		snprintf(out, cap, "unknown");
	}
}

uint16_t peer_local_port(int fd)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof local;
	if (getsockname(fd, (struct sockaddr *)&local, &len) != 0)
		return 0;
	return ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
						 : ((struct sockaddr_in *)&local)->sin_port);
}
