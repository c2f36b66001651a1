/*
 * "inet": the multicast groups a UDP socket has joined (IP_ADD_MEMBERSHIP, MCAST_JOIN_GROUP
 * and the source-specific variants), which no getsockopt lists.
 *
 * Every group joined by any socket shows on its device in /proc/net/igmp (IPv4: the device's
 * index, then one line per group with the address printed as the raw __be32 in %08X) or
 * /proc/net/igmp6 (index, device, address in 32 hex digits). getsockopt(MCAST_MSFILTER) asked
 * about one group and interface answers EADDRNOTAVAIL unless this socket joined exactly that
 * pair (ip_mc_gsfget(), ip6_mc_msfget()), and otherwise gives its filter mode and sources; so
 * each group listed on the devices is asked about. The kernel stores the interface it chose
 * when the program gave none, so the pair found is the one to join again.
 * TCP sockets cannot join groups, so only UDP sockets are looked at.
 */
#define LOG_PREFIX "files/inet: "
#include "files/inet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "util/util.h"

#define MC_MAX_SOURCES 64	/* more than this many source filters on one group is refused */

/* One group joined on some device, as /proc/net/igmp{,6} lists it. */
struct mc_candidate {
	int ifindex;
	struct sockaddr_storage group;
};

static int level_of(int family)
{
	return family == AF_INET ? SOL_IP : SOL_IPV6;
}

static void addr_to_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, len);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, len);
}

static int str_to_addr(int family, const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = family;
	if (family == AF_INET)
		return inet_pton(AF_INET, s, &((struct sockaddr_in *)ss)->sin_addr) == 1 ? 0 : -EINVAL;
	return inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1 ? 0 : -EINVAL;
}

/* "\t\t\t\t010000E0 ..." under "1\tlo ...": the raw __be32, so it is s_addr as it is. */
static bool parse_igmp(const char *line, int *ifindex, struct mc_candidate *c)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&c->group;
	unsigned int raw;
	int idx;

	if (line[0] != '\t') {
		/* a device line ("1\tlo        :     1      V3"), or the heading */
		if (sscanf(line, "%d", &idx) == 1)
			*ifindex = idx;
		return false;
	}
	if (sscanf(line, " %x", &raw) != 1)
		return false;
	memset(c, 0, sizeof(*c));
	c->ifindex = *ifindex;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = raw;
	return true;
}

/* "1    lo              ff020000000000000000000000000001     1 0000000C 0" */
static bool parse_igmp6(const char *line, int *ifindex, struct mc_candidate *c)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&c->group;
	char hex[33];

	memset(c, 0, sizeof(*c));
	if (sscanf(line, "%d %*s %32s", &c->ifindex, hex) != 2 || strlen(hex) != 32)
		return false;
	sin6->sin6_family = AF_INET6;
	for (int i = 0; i < 16; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &sin6->sin6_addr.s6_addr[i]) != 1)
			return false;
	return true;
}

/* The groups on every device of crest's network namespace (the socket's: checked before). */
static int list_candidates(int family, struct mc_candidate **ret, size_t *nr)
{
	const char *path = family == AF_INET ? "/proc/self/net/igmp" : "/proc/self/net/igmp6";
	_cleanup_free_ char *text = read_file_at(AT_FDCWD, path, NULL);
	char *line, *save = NULL;
	size_t cap = 0;
	int ifindex = 0;

	*ret = NULL;
	*nr = 0;
	if (!text)
		return errno == ENOENT ? 0 : pr_errno(-errno, "cannot read %s", path);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct mc_candidate c;

		if (!(family == AF_INET ? parse_igmp(line, &ifindex, &c) :
					  parse_igmp6(line, &ifindex, &c)))
			continue;
		if (xgrow((void **)ret, &cap, *nr + 1, sizeof(**ret)))
			return -ENOMEM;
		(*ret)[(*nr)++] = c;
	}
	return 0;
}

static int save_group(InetSocket *is, const struct group_filter *gf)
{
	InetMcGroup **groups = xrealloc(is->mcast, (is->n_mcast + 1) * sizeof(*groups));
	char buf[INET6_ADDRSTRLEN];
	InetMcGroup *g;

	if (!groups)
		return -ENOMEM;
	is->mcast = groups;
	g = xmalloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	inet_mc_group__init(g);
	is->mcast[is->n_mcast++] = g;	/* freed with the record from now on */
	addr_to_str(&gf->gf_group, buf, sizeof(buf));
	g->group = xstrdup(buf);
	g->ifindex = gf->gf_interface;
	g->fmode = gf->gf_fmode;
	g->sources = xzalloc(gf->gf_numsrc * sizeof(*g->sources) + 1);
	if (!g->group || !g->sources)
		return -ENOMEM;
	for (uint32_t i = 0; i < gf->gf_numsrc; i++) {
		addr_to_str(&gf->gf_slist[i], buf, sizeof(buf));
		g->sources[g->n_sources] = xstrdup(buf);
		if (!g->sources[g->n_sources++])
			return -ENOMEM;
	}
	return 0;
}

/* Asks whether the socket joined candidate c: 1 and saved if so, 0 if not, or -errno. */
static int query_group(int lfd, InetSocket *is, const struct mc_candidate *c,
		       struct group_filter *gf, const char *what)
{
	socklen_t len = GROUP_FILTER_SIZE(MC_MAX_SOURCES);
	char buf[INET6_ADDRSTRLEN];
	int err;

	memset(gf, 0, len);
	gf->gf_interface = c->ifindex;
	gf->gf_group = c->group;
	gf->gf_numsrc = MC_MAX_SOURCES;
	if (getsockopt(lfd, level_of(is->family), MCAST_MSFILTER, gf, &len))
		return errno == EADDRNOTAVAIL || errno == ENODEV ? 0 :
		       pr_errno(-errno, "%s: cannot read its multicast memberships", what);
	if (gf->gf_numsrc > MC_MAX_SOURCES) {
		addr_to_str(&c->group, buf, sizeof(buf));
		pr_err("%s: multicast group %s has %u source filters, more than the %d crest saves: cannot checkpoint it yet",
		       what, buf, gf->gf_numsrc, MC_MAX_SOURCES);
		return -EOPNOTSUPP;
	}
	err = save_group(is, gf);
	return err ? err : 1;
}

int inet_mcast_dump(int lfd, InetSocket *is, const char *what)
{
	_cleanup_free_ struct mc_candidate *cands = NULL;
	_cleanup_free_ struct group_filter *gf = NULL;
	size_t nr;
	int err;

	if (is->protocol != IPPROTO_UDP)
		return 0;
	err = list_candidates(is->family, &cands, &nr);
	if (err)
		return err;
	gf = xmalloc(GROUP_FILTER_SIZE(MC_MAX_SOURCES));
	if (!gf)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++) {
		err = query_group(lfd, is, &cands[i], gf, what);
		if (err < 0)
			return err;
	}
	return 0;
}

/* The source filter of a group joined again, when it has one (or is in INCLUDE mode). */
static int restore_filter(int fd, int family, const InetMcGroup *g, const char *what)
{
	_cleanup_free_ struct group_filter *gf = NULL;
	size_t len = GROUP_FILTER_SIZE(g->n_sources);

	if (g->fmode != MCAST_INCLUDE && !g->n_sources)
		return 0;
	gf = xzalloc(len);
	if (!gf)
		return -ENOMEM;
	gf->gf_interface = g->ifindex;
	gf->gf_fmode = g->fmode;
	gf->gf_numsrc = g->n_sources;
	if (str_to_addr(family, g->group, &gf->gf_group))
		return -EINVAL;
	for (size_t i = 0; i < g->n_sources; i++)
		if (str_to_addr(family, g->sources[i], &gf->gf_slist[i]))
			return -EINVAL;
	if (setsockopt(fd, level_of(family), MCAST_MSFILTER, gf, len))
		return pr_errno(-errno, "%s: cannot set the source filter of multicast group %s",
				what, g->group);
	return 0;
}

int inet_mcast_restore(int fd, const InetSocket *is, const char *what)
{
	for (size_t i = 0; i < is->n_mcast; i++) {
		const InetMcGroup *g = is->mcast[i];
		struct group_req req = { .gr_interface = g->ifindex };
		int err;

		if (!g->group || str_to_addr(is->family, g->group, &req.gr_group)) {
			pr_err("%s: bad multicast group in the image", what);
			return -EINVAL;
		}
		if (setsockopt(fd, level_of(is->family), MCAST_JOIN_GROUP, &req, sizeof(req)))
			return pr_errno(-errno, "%s: cannot join multicast group %s on interface %u",
					what, g->group, g->ifindex);
		err = restore_filter(fd, is->family, g, what);
		if (err)
			return err;
	}
	return 0;
}
