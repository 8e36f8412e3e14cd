/*
 * The access plugin's data, from the two files the fleet's account sync writes:
 * DIR/passwd, Mosquitto's own password-file format (`user:$7$...` a line: PBKDF2-SHA512),
 * and DIR/access.data, one record a line:
 *   D <device_id> <district>     a device's district (for bridges)
 *   B <bridge_user> <district>   a district a bridge may carry (one line each)
 *   X <identity>                 a revoked certificate identity: denied everything
 * Districts come percent-encoded, so a line splits on spaces.
 */
#ifndef SIMPUL_ACCESS_DATA_H
#define SIMPUL_ACCESS_DATA_H

#define _GNU_SOURCE
#include <search.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

struct access_data {
	struct hsearch_data hash;
	char **strings;       /* owned: every key and value, freed together */
	size_t count;
	size_t cap;
	char **accounts;      /* the password file's users, in file order (into strings) */
	size_t account_count;
	size_t account_cap;
	char **denied;        /* the X identities, likewise */
	size_t denied_count;
	size_t denied_cap;
	bool made;
};

/* 0 and `out` filled, or -1 when a file cannot be read. Malformed lines are skipped
 * and counted in *skipped. */
int access_data_load(const char *passwd_path, const char *data_path, struct access_data *out,
		size_t *skipped);
void access_data_free(struct access_data *d);
/* The value stored for (kind, a[, b]), or NULL. */
const char *access_data_get(const struct access_data *d, const char *kind, const char *a,
		const char *b);
/* Does `password` match a stored $7$ hash? Constant time in the digest compare. */
bool password_matches(const char *password, const char *stored);

#endif
