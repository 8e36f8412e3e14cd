/*
 * simpul_acl: Simpul's access rules inside Mosquitto 2.0 (plugin interface v5).
 *
 * Why a plugin: with an acl_file, Mosquitto 2.0.11 grants every SUBSCRIBE and checks
 * only at delivery, so a box could join the ingest's shared group and starve it; and
 * stock Mosquitto bounds retained messages and sizes only broker-wide. Its
 * dynamic-security plugin refuses at SUBSCRIBE but has no %u, knows nothing of
 * retain or size, and would need roles kept in step with every registration.
 * This plugin decides every check from the topic contract itself, so a registration
 * changes nothing here; only bridges' districts and revoked identities come from a
 * data file that the fleet writes beside the password file (re-read on SIGHUP).
 *
 * Loaded once per listener (per_listener_settings true) with plugin_opt_listener:
 *   fleet  - the loopback listener: only the fleet's own accounts, with client ids
 *            no device id can take (a character outside [a-z0-9-]); all topics.
 *   device - boxes (username = client id = device id) and district bridges
 *            (simpul_bridge_<name>): each confined to its own tree or districts.
 * plugin_opt_leaves: the contract's leaf table, rendered from simpul_wire.topics:
 *   "leaf:writer:retained:max_bytes,..." with writer b (box) or f (fleet).
 * plugin_opt_data: the data file, lines of
 *   D <device_id> <district>     a device and its district (for bridges)
 *   B <bridge_user> <district>   a district a bridge may carry (one line each)
 *   X <identity>                 revoked: denied everything
 *
 * Decisions:
 *   box    SUBSCRIBE/READ  simpul/v1/<self>/<leaf the fleet writes>; cmd id may be '+'
 *          WRITE           simpul/v1/<self>/<leaf the box writes>, retain only where the
 *                          contract retains, payload within the leaf's bound
 *   bridge SUBSCRIBE       simpul/v1/+/<leaf the fleet writes> (its district broker's
 *                          `topic ... in` lines); READ and WRITE as a box, for any
 *                          device of its districts
 *   Anything starting with '$' ($share, $SYS, $CONTROL) is refused to boxes and bridges.
 */
#define _GNU_SOURCE
#include <search.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define MAX_LEAVES 16
#define MAX_LEVELS 8
#define BRIDGE_PREFIX "simpul_bridge_"
#define KEY_SEP '\x1f'

struct leaf_rule {
	char name[32];
	char writer;       /* 'b': the box writes it; 'f': the fleet does */
	bool retained;
	uint32_t max_bytes;
};

struct table {
	struct hsearch_data hash;
	char **keys;       /* owned: every key and value string, freed together */
	size_t count;
	size_t cap;
	bool made;
};

struct instance {
	mosquitto_plugin_id_t *pid;
	bool fleet_listener;
	char *data_path;
	struct leaf_rule leaves[MAX_LEAVES];
	int leaf_count;
	struct table table;
	time_t log_second;
	int logged_this_second;
	unsigned long denied;
};

static bool device_shaped(const char *s)
{
	size_t n = 0;
	if(s == NULL) return false;
	for(const char *p = s; *p; p++, n++){
		bool lower = *p >= 'a' && *p <= 'z', digit = *p >= '0' && *p <= '9';
		if(!lower && !digit && !(*p == '-' && n > 0)) return false;
	}
	return n >= 2 && n <= 63;
}

static bool command_id_ok(const char *s)
{
	size_t n = 0;
	for(const char *p = s; *p; p++, n++){
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
			|| (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
		if(!ok) return false;
	}
	return n >= 1 && n <= 64;
}

/* A few denials a second reach the log: a hostile box must not fill the disk. */
static void log_denial(struct instance *inst, const char *who, const char *what,
		const char *topic, const char *why)
{
	time_t now = time(NULL);
	inst->denied++;
	if(now != inst->log_second){
		inst->log_second = now;
		inst->logged_this_second = 0;
	}
	if(inst->logged_this_second++ < 5){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "simpul_acl: denied %s %s on %.200s: %s (%lu denied)",
				who ? who : "(none)", what, topic ? topic : "", why, inst->denied);
	}
}

/* ---- the data file ---------------------------------------------------------------- */

static void table_free(struct table *t)
{
	if(t->made) hdestroy_r(&t->hash);
	for(size_t i = 0; i < t->count; i++) free(t->keys[i]);
	free(t->keys);
	memset(t, 0, sizeof(*t));
}

/* Keeps a copy of `s` in the table's list, so that one pass frees every string. */
static char *own(struct table *t, const char *s)
{
	char *copy = strdup(s);
	if(copy == NULL) return NULL;
	if(t->count == t->cap){
		size_t cap = t->cap ? t->cap * 2 : 1024;
		char **keys = realloc(t->keys, cap * sizeof(char *));
		if(keys == NULL){ free(copy); return NULL; }
		t->keys = keys;
		t->cap = cap;
	}
	t->keys[t->count++] = copy;
	return copy;
}

static void make_key(char *buf, size_t len, const char *kind, const char *a, const char *b)
{
	if(b) snprintf(buf, len, "%s%c%s%c%s", kind, KEY_SEP, a, KEY_SEP, b);
	else snprintf(buf, len, "%s%c%s", kind, KEY_SEP, a);
}

static bool table_put(struct table *t, char *key, void *value)
{
	ENTRY e = {.key = key, .data = value}, *found;
	return hsearch_r(e, ENTER, &found, &t->hash) != 0;
}

static void *table_get(struct table *t, const char *kind, const char *a, const char *b)
{
	char key[512];
	ENTRY e, *found;
	if(!t->made) return NULL;
	make_key(key, sizeof(key), kind, a, b);
	e.key = key;
	e.data = NULL;
	if(!hsearch_r(e, FIND, &found, &t->hash)) return NULL;
	return found->data;
}

/* Returns 0 and fills `out`, or -1 when the file cannot be read (the caller keeps the
 * table it had). A malformed line is skipped and logged, never fatal. */
static int table_load(const char *path, struct table *out)
{
	FILE *f;
	char line[1024];
	size_t lines = 0, lineno = 0;
	struct table t;

	memset(&t, 0, sizeof(t));
	f = fopen(path, "r");
	if(f == NULL) return -1;
	while(fgets(line, sizeof(line), f)) lines++;
	rewind(f);
	if(!hcreate_r(lines * 2 + 64, &t.hash)){ fclose(f); return -1; }
	t.made = true;
	while(fgets(line, sizeof(line), f)){
		char kind[4], a[256], b[256], joined[600];
		char *key = NULL, *value = NULL;
		int got;
		lineno++;
		if(line[0] == '#' || line[0] == '\n') continue;
		got = sscanf(line, "%3s %255s %255s", kind, a, b);
		if(got == 3 && !strcmp(kind, "D")){
			make_key(joined, sizeof(joined), "D", a, NULL);
			key = own(&t, joined);
			value = own(&t, b);
		}else if(got == 3 && !strcmp(kind, "B")){
			make_key(joined, sizeof(joined), "B", a, b);
			key = value = own(&t, joined);
		}else if(got >= 2 && !strcmp(kind, "X")){
			make_key(joined, sizeof(joined), "X", a, NULL);
			key = value = own(&t, joined);
		}else{
			mosquitto_log_printf(MOSQ_LOG_WARNING, "simpul_acl: %s:%zu: line skipped", path, lineno);
			continue;
		}
		if(key == NULL || value == NULL || !table_put(&t, key, value)){
			mosquitto_log_printf(MOSQ_LOG_ERR, "simpul_acl: %s: out of memory", path);
			fclose(f);
			table_free(&t);
			return -1;
		}
	}
	fclose(f);
	*out = t;
	return 0;
}

static void reload_data(struct instance *inst)
{
	struct table fresh;
	if(inst->data_path == NULL) return;
	if(table_load(inst->data_path, &fresh)){
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				"simpul_acl: cannot read %s; keeping the rules loaded before", inst->data_path);
		return;
	}
	table_free(&inst->table);
	inst->table = fresh;
}

/* ---- topics ----------------------------------------------------------------------- */

struct parsed {
	char device[64];
	const struct leaf_rule *rule;
	bool device_wild;      /* '+' in the device level (a filter) */
	bool command_wild;     /* '+' as the command id (a filter) */
};

/* simpul/v1/<device>/<leaf>, with cmd/<id> and cmd/<id>/result; false for anything else,
 * '#' anywhere included. */
static bool parse(struct instance *inst, const char *topic, struct parsed *p)
{
	char buf[512], *levels[MAX_LEVELS], *save = NULL, leaf[64];
	int n = 0;

	if(strlen(topic) >= sizeof(buf)) return false;
	strcpy(buf, topic);
	for(char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)){
		if(n == MAX_LEVELS) return false;
		levels[n++] = tok;
	}
	/* strtok folds empty levels ("a//b"); a topic with them is not ours. */
	if(strstr(topic, "//") || topic[0] == '/' || topic[strlen(topic) - 1] == '/') return false;
	if(n < 4 || strcmp(levels[0], "simpul") || strcmp(levels[1], "v1")) return false;
	memset(p, 0, sizeof(*p));
	if(!strcmp(levels[2], "+")){
		p->device_wild = true;
	}else if(!device_shaped(levels[2])){
		return false;
	}
	snprintf(p->device, sizeof(p->device), "%s", levels[2]);
	if(!strcmp(levels[3], "cmd")){
		if(n == 5 || (n == 6 && !strcmp(levels[5], "result"))){
			if(!strcmp(levels[4], "+")) p->command_wild = true;
			else if(!command_id_ok(levels[4])) return false;
			snprintf(leaf, sizeof(leaf), n == 5 ? "cmd" : "cmd/result");
		}else{
			return false;
		}
	}else if(n == 4){
		snprintf(leaf, sizeof(leaf), "%s", levels[3]);
	}else if(n == 5){
		snprintf(leaf, sizeof(leaf), "%s/%s", levels[3], levels[4]);
	}else{
		return false;
	}
	for(int i = 0; i < inst->leaf_count; i++){
		if(!strcmp(inst->leaves[i].name, leaf)){
			p->rule = &inst->leaves[i];
			return true;
		}
	}
	return false;
}

/* ---- decisions -------------------------------------------------------------------- */

/* NULL when allowed, else the reason. `device_ok` says whether the topic's device is one
 * this client may speak for. */
static const char *judge_leaf(const struct mosquitto_evt_acl_check *ed, const struct parsed *p,
		bool filter_wild_ok)
{
	const struct leaf_rule *rule = p->rule;
	switch(ed->access){
		case MOSQ_ACL_SUBSCRIBE:
			if(p->device_wild && !filter_wild_ok) return "a filter outside its own tree";
			if(rule->writer != 'f') return "not a leaf the fleet writes";
			return NULL;
		case MOSQ_ACL_UNSUBSCRIBE:
			return NULL;
		case MOSQ_ACL_READ:
			if(p->device_wild || p->command_wild) return "a wildcard in a topic";
			return rule->writer == 'f' ? NULL : "not a leaf the fleet writes";
		case MOSQ_ACL_WRITE:
			if(p->device_wild || p->command_wild) return "a wildcard in a topic";
			if(rule->writer != 'b') return "not a leaf a box writes";
			if(ed->retain && !rule->retained) return "retain on a leaf the contract never retains";
			if(ed->payloadlen > rule->max_bytes) return "payload over the leaf's bound";
			return NULL;
		default:
			return "unknown access";
	}
}

static int decide(struct instance *inst, const struct mosquitto_evt_acl_check *ed)
{
	const char *user = mosquitto_client_username(ed->client);
	const char *why = NULL;
	struct parsed p;

	if(inst->fleet_listener){
		/* Only the fleet's own accounts log in here (basic auth below). */
		return MOSQ_ERR_SUCCESS;
	}
	if(user == NULL) why = "no username";
	else if(table_get(&inst->table, "X", user, NULL)) why = "revoked identity";
	else if(ed->topic == NULL || ed->topic[0] == '$') why = "a $ topic";
	else if(!parse(inst, ed->topic, &p)) why = "not a topic of the contract";
	else if(device_shaped(user)){
		if(p.device_wild || strcmp(p.device, user)) why = "another device's tree";
		else why = judge_leaf(ed, &p, false);
	}else if(!strncmp(user, BRIDGE_PREFIX, strlen(BRIDGE_PREFIX))){
		if(!p.device_wild || ed->access != MOSQ_ACL_SUBSCRIBE){
			const char *district = p.device_wild ? NULL : table_get(&inst->table, "D", p.device, NULL);
			if(district == NULL) why = "a device outside the bridge's districts";
			else if(!table_get(&inst->table, "B", user, district))
				why = "a device outside the bridge's districts";
		}
		if(why == NULL) why = judge_leaf(ed, &p, true);
	}else{
		why = "not a device or bridge account";
	}
	if(why == NULL) return MOSQ_ERR_SUCCESS;
	log_denial(inst, user,
			ed->access == MOSQ_ACL_SUBSCRIBE ? "subscribe" : ed->access == MOSQ_ACL_WRITE ? "publish" : "read",
			ed->topic, why);
	return MOSQ_ERR_ACL_DENIED;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	return decide(userdata, event_data);
}

/* Accounts by listener: the fleet's own on the fleet listener, never a box's; boxes and
 * bridges on the device listener, never the fleet's. The password file then decides. */
static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct instance *inst = userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	(void)event;

	if(ed->username == NULL) return MOSQ_ERR_AUTH;
	if(inst->fleet_listener){
		if(device_shaped(ed->username) || !strncmp(ed->username, BRIDGE_PREFIX, strlen(BRIDGE_PREFIX))){
			log_denial(inst, ed->username, "login", "", "a box or bridge on the fleet's listener");
			return MOSQ_ERR_AUTH;
		}
		if(client_id == NULL || device_shaped(client_id)){
			log_denial(inst, ed->username, "login", client_id, "a client id a device could take");
			return MOSQ_ERR_AUTH;
		}
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	/* A revoked certificate identity (X) may still log in with a password: that is how
	 * the fleet takes its session over to drop it (fleet_api/revoke.py); the ACL check
	 * then denies it everything. */
	if(device_shaped(ed->username) || !strncmp(ed->username, BRIDGE_PREFIX, strlen(BRIDGE_PREFIX))){
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	log_denial(inst, ed->username, "login", "", "a fleet account on the device listener");
	return MOSQ_ERR_AUTH;
}

static int on_reload(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	reload_data(userdata);
	return MOSQ_ERR_SUCCESS;
}

/* ---- set-up ----------------------------------------------------------------------- */

static int parse_leaves(struct instance *inst, const char *spec)
{
	char *copy = strdup(spec), *save = NULL;
	if(copy == NULL) return MOSQ_ERR_NOMEM;
	for(char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)){
		struct leaf_rule *rule;
		char name[32], writer, retained;
		unsigned long max_bytes;
		if(inst->leaf_count == MAX_LEAVES
				|| sscanf(item, "%31[^:]:%c:%c:%lu", name, &writer, &retained, &max_bytes) != 4
				|| (writer != 'b' && writer != 'f') || (retained != 'r' && retained != '-')){
			mosquitto_log_printf(MOSQ_LOG_ERR, "simpul_acl: bad leaf rule %.80s", item);
			free(copy);
			return MOSQ_ERR_INVAL;
		}
		rule = &inst->leaves[inst->leaf_count++];
		snprintf(rule->name, sizeof(rule->name), "%s", name);
		rule->writer = writer;
		rule->retained = retained == 'r';
		rule->max_bytes = (uint32_t)max_bytes;
	}
	free(copy);
	return inst->leaf_count ? MOSQ_ERR_SUCCESS : MOSQ_ERR_INVAL;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	struct instance *inst = calloc(1, sizeof(*inst));
	const char *listener = NULL, *leaves = NULL;
	int rc;

	if(inst == NULL) return MOSQ_ERR_NOMEM;
	inst->pid = identifier;
	for(int i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, "listener")) listener = options[i].value;
		else if(!strcmp(options[i].key, "leaves")) leaves = options[i].value;
		else if(!strcmp(options[i].key, "data")) inst->data_path = strdup(options[i].value);
	}
	if(listener == NULL || (strcmp(listener, "fleet") && strcmp(listener, "device")) || leaves == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR,
				"simpul_acl: needs plugin_opt_listener fleet|device and plugin_opt_leaves");
		free(inst->data_path);
		free(inst);
		return MOSQ_ERR_INVAL;
	}
	inst->fleet_listener = !strcmp(listener, "fleet");
	rc = parse_leaves(inst, leaves);
	if(rc){
		free(inst->data_path);
		free(inst);
		return rc;
	}
	reload_data(inst);
	*userdata = inst;
	if(mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, inst)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, inst)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_RELOAD, on_reload, NULL, inst)){
		return MOSQ_ERR_UNKNOWN;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO, "simpul_acl: %s listener, %d leaves, data %s",
			listener, inst->leaf_count, inst->data_path ? inst->data_path : "(none)");
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct instance *inst = userdata;
	(void)options;
	(void)option_count;
	if(inst == NULL) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(inst->pid, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	mosquitto_callback_unregister(inst->pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(inst->pid, MOSQ_EVT_RELOAD, on_reload, NULL);
	table_free(&inst->table);
	free(inst->data_path);
	free(inst);
	return MOSQ_ERR_SUCCESS;
}
