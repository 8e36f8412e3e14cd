/* The access plugin's data file and password checks; see access_data.h. */
#include "access_data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define KEY_SEP '\x1f'

static char *own(struct access_data *d, const char *s)
{
	char *copy = strdup(s);
	if(copy == NULL) return NULL;
	if(d->count == d->cap){
		size_t cap = d->cap ? d->cap * 2 : 1024;
		char **grown = realloc(d->strings, cap * sizeof(char *));
		if(grown == NULL){ free(copy); return NULL; }
		d->strings = grown;
		d->cap = cap;
	}
	d->strings[d->count++] = copy;
	return copy;
}

static bool remember(char ***list, size_t *count, size_t *cap, char *item)
{
	if(*count == *cap){
		size_t grown_cap = *cap ? *cap * 2 : 1024;
		char **grown = realloc(*list, grown_cap * sizeof(char *));
		if(grown == NULL) return false;
		*list = grown;
		*cap = grown_cap;
	}
	(*list)[(*count)++] = item;
	return true;
}

static void make_key(char *buf, size_t len, const char *kind, const char *a, const char *b)
{
	if(b) snprintf(buf, len, "%s%c%s%c%s", kind, KEY_SEP, a, KEY_SEP, b);
	else snprintf(buf, len, "%s%c%s", kind, KEY_SEP, a);
}

void access_data_free(struct access_data *d)
{
	if(d->made) hdestroy_r(&d->hash);
	for(size_t i = 0; i < d->count; i++) free(d->strings[i]);
	free(d->strings);
	free(d->accounts);
	free(d->denied);
	memset(d, 0, sizeof(*d));
}

const char *access_data_get(const struct access_data *d, const char *kind, const char *a,
		const char *b)
{
	char key[600];
	ENTRY e, *found;
	if(!d->made || a == NULL) return NULL;
	make_key(key, sizeof(key), kind, a, b);
	e.key = key;
	e.data = NULL;
	if(!hsearch_r(e, FIND, &found, (struct hsearch_data *)&d->hash)) return NULL;
	return found->data;
}

static bool put(struct access_data *d, char *key, char *value)
{
	ENTRY e = {.key = key, .data = value}, *found;
	if(!hsearch_r(e, ENTER, &found, &d->hash)) return false;
	found->data = value;  /* a repeated key: the last line wins */
	return true;
}

static size_t count_lines(FILE *f)
{
	char line[1024];
	size_t n = 0;
	while(fgets(line, sizeof(line), f)) n++;
	rewind(f);
	return n;
}

/* One line of access.data; false only when memory runs out. */
static bool data_line(struct access_data *d, const char *line, size_t *skipped)
{
	char kind[4], a[256], b[256], joined[600];
	char *key = NULL, *value = NULL;
	int got;

	if(line[0] == '#' || line[0] == '\n') return true;
	got = sscanf(line, "%3s %255s %255s", kind, a, b);
	if(got == 3 && !strcmp(kind, "D")){
		make_key(joined, sizeof(joined), "D", a, NULL);
		key = own(d, joined);
		value = own(d, b);
	}else if(got == 3 && !strcmp(kind, "B")){
		make_key(joined, sizeof(joined), "B", a, b);
		key = value = own(d, joined);
	}else if(got >= 2 && !strcmp(kind, "X")){
		char *identity = own(d, a);
		make_key(joined, sizeof(joined), "X", a, NULL);
		key = value = own(d, joined);
		if(identity == NULL || !remember(&d->denied, &d->denied_count, &d->denied_cap, identity)){
			return false;
		}
	}else{
		(*skipped)++;
		return true;
	}
	return key && value && put(d, key, value);
}

/* One `user:hash` line of the password file; false only when memory runs out. */
static bool passwd_line(struct access_data *d, char *line, size_t *skipped)
{
	char *colon = strchr(line, ':'), *end = line + strlen(line), joined[600], *key, *value, *user;

	while(end > line && (end[-1] == '\n' || end[-1] == '\r')) *--end = '\0';
	if(line[0] == '\0' || line[0] == '#') return true;
	if(colon == NULL || colon == line || colon[1] == '\0' || colon - line > 200){
		(*skipped)++;
		return true;
	}
	*colon = '\0';
	make_key(joined, sizeof(joined), "A", line, NULL);
	key = own(d, joined);
	value = own(d, colon + 1);
	user = own(d, line);
	if(!key || !value || !user
			|| !remember(&d->accounts, &d->account_count, &d->account_cap, user)){
		return false;
	}
	return put(d, key, value);
}

int access_data_load(const char *passwd_path, const char *data_path, struct access_data *out,
		size_t *skipped)
{
	FILE *pw, *data;
	char line[1024];
	bool ok = true;
	struct access_data d;

	memset(&d, 0, sizeof(d));
	*skipped = 0;
	pw = fopen(passwd_path, "r");
	if(pw == NULL) return -1;
	data = fopen(data_path, "r");
	if(data == NULL){ fclose(pw); return -1; }
	if(!hcreate_r((count_lines(pw) + count_lines(data)) * 2 + 64, &d.hash)){
		fclose(pw);
		fclose(data);
		return -1;
	}
	d.made = true;
	while(ok && fgets(line, sizeof(line), pw)) ok = passwd_line(&d, line, skipped);
	while(ok && fgets(line, sizeof(line), data)) ok = data_line(&d, line, skipped);
	fclose(pw);
	fclose(data);
	if(!ok){
		access_data_free(&d);
		return -1;
	}
	*out = d;
	return 0;
}

/* Base64 into `out`; the decoded length, or -1. */
static int unbase64(const char *in, unsigned char *out, size_t cap)
{
	size_t len = strlen(in), pad = 0;
	int n;
	if(len == 0 || len % 4 || (len / 4) * 3 > cap) return -1;
	if(in[len - 1] == '=') pad++;
	if(len > 1 && in[len - 2] == '=') pad++;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if(n < 0) return -1;
	return n - (int)pad;
}

bool password_matches(const char *password, const char *stored)
{
	char copy[512], *save = NULL, *kind, *iter, *salt64, *hash64;
	unsigned char salt[128], want[128], got[128];
	int salt_len, hash_len;
	long iterations;

	if(password == NULL || stored == NULL || strlen(stored) >= sizeof(copy)) return false;
	strcpy(copy, stored);
	kind = strtok_r(copy, "$", &save);
	iter = strtok_r(NULL, "$", &save);
	salt64 = strtok_r(NULL, "$", &save);
	hash64 = strtok_r(NULL, "$", &save);
	if(!kind || !iter || !salt64 || !hash64 || strcmp(kind, "7")) return false;
	iterations = strtol(iter, NULL, 10);
	if(iterations < 1 || iterations > 1000000) return false;
	salt_len = unbase64(salt64, salt, sizeof(salt));
	hash_len = unbase64(hash64, want, sizeof(want));
	if(salt_len <= 0 || hash_len <= 0 || hash_len > (int)sizeof(got)) return false;
	if(!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, salt_len, (int)iterations,
				EVP_sha512(), hash_len, got)){
		return false;
	}
	return CRYPTO_memcmp(got, want, (size_t)hash_len) == 0;
}
