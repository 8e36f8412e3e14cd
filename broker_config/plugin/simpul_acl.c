/*
 * simpul_acl: Simpul's logins and access rules inside Mosquitto 2.0 (plugin interface v5).
 *
 * Why a plugin: with an acl_file, Mosquitto 2.0.11 grants every SUBSCRIBE and checks
 * only at delivery, so a box could join the ingest's shared group and starve it; and
 * stock Mosquitto bounds retained messages and sizes only broker-wide. Its
 * dynamic-security plugin refuses at SUBSCRIBE but has no %u, knows nothing of retain
 * or size, and would need roles kept in step with every registration.
 *
 * Why the logins too, from the password file but not through password_file: a reload (SIGHUP) makes Mosquitto
 * 2.0.11 re-check the password of every session, and a session that is already
 * disconnected and whose password no longer checks is disconnected a second time:
 * put twice on the session-expiry list, it is later freed while still listed, and the
 * broker reads freed memory and aborts (docs/security.md, "The broker's crash"). So
 * this plugin reads the password file itself (plugin_opt_passwords, Mosquitto's own
 * format) with its data file (plugin_opt_data), and the fleet tells it to re-read them
 * with a message on $CONTROL/simpul/v1/reload (fleet listener only), never SIGHUP.
 * A reload kicks the live connections of accounts it removed or changed (connected
 * clients only, which Mosquitto handles safely); a session left behind by a removed
 * account can do nothing, since every check wants an account that exists now.
 *
 * Loaded once per listener (per_listener_settings true) with plugin_opt_listener:
 *   fleet  - the loopback listener: only the fleet's own accounts, with client ids
 *            no device id can take (a character outside [a-z0-9-]); all topics.
 *   device - boxes (username = client id = device id) and district bridges
 *            (simpul_bridge_<name>): each confined to its own tree or districts.
 * plugin_opt_leaves: the contract's leaf table, rendered from simpul_wire.topics:
 *   "leaf:writer:retained:max_bytes,..." with writer b (box) or f (fleet).
 * plugin_opt_passwords, plugin_opt_data: the two files (access_data.h has their
 * formats). The instances share one copy of them.
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
#include "access_data.h"

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
#define RELOAD_TOPIC "$CONTROL/simpul/v1/reload"

struct leaf_rule {
	char name[32];
	char writer;       /* 'b': the box writes it; 'f': the fleet does */
	bool retained;
	uint32_t max_bytes;
};

struct instance {
	mosquitto_plugin_id_t *pid;
	bool fleet_listener;
	struct leaf_rule leaves[MAX_LEAVES];
	int leaf_count;
};

/* Shared by every instance: one broker, one data file. Mosquitto runs plugins on its
 * one main thread. */
static struct {
	char *passwd_path;
	char *data_path;
	struct access_data now;
	/* What a SIGHUP's re-check of every session may still meet: the accounts before
	 * the reload, so a session of a removed account is not disconnected twice. */
	struct access_data before;
	bool rechecking;
	struct stat passwd_stamp;
	struct stat data_stamp;
	int instances;
	time_t log_second;
	int logged_this_second;
	unsigned long denied;
	unsigned long reloads;
} g;

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

static bool is_bridge(const char *user)
{
	return user && !strncmp(user, BRIDGE_PREFIX, strlen(BRIDGE_PREFIX));
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
static void log_denial(const char *who, const char *what, const char *topic, const char *why)
{
	time_t now = time(NULL);
	g.denied++;
	if(now != g.log_second){
		g.log_second = now;
		g.logged_this_second = 0;
	}
	if(g.logged_this_second++ < 5){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "simpul_acl: denied %s %s on %.200s: %s (%lu denied)",
				who ? who : "(none)", what, topic ? topic : "", why, g.denied);
	}
}

/* ---- the data file ---------------------------------------------------------------- */

/* Re-read the data file if it changed. Kicks the live connections of accounts that
 * are gone or whose hash changed; returns false when the file cannot be read (the
 * rules loaded before stay). */
static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size
		&& a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static bool reload_data(bool force)
{
	struct access_data fresh;
	struct stat pw, data;
	size_t skipped = 0, kicked = 0;

	if(g.passwd_path == NULL || stat(g.passwd_path, &pw) || stat(g.data_path, &data)){
		mosquitto_log_printf(MOSQ_LOG_WARNING, "simpul_acl: cannot find %s or %s; keeping the "
				"rules loaded before", g.passwd_path, g.data_path);
		return false;
	}
	if(!force && g.now.made && same_file(&pw, &g.passwd_stamp) && same_file(&data, &g.data_stamp)){
		return true;  /* the same files: one SIGHUP calls every instance */
	}
	if(access_data_load(g.passwd_path, g.data_path, &fresh, &skipped)){
		mosquitto_log_printf(MOSQ_LOG_WARNING, "simpul_acl: cannot read %s or %s; keeping the "
				"rules loaded before", g.passwd_path, g.data_path);
		return false;
	}
	g.passwd_stamp = pw;
	g.data_stamp = data;
	for(size_t i = 0; i < g.now.account_count; i++){
		const char *user = g.now.accounts[i];
		const char *was = access_data_get(&g.now, "A", user, NULL);
		const char *is = access_data_get(&fresh, "A", user, NULL);
		if(is == NULL || strcmp(is, was)){
			mosquitto_kick_client_by_username(user, false);
			kicked++;
		}
	}
	/* A newly revoked certificate identity: its live connection goes too. A TLS login
	 * never reaches basic auth, so from here on every check of its session is denied. */
	for(size_t i = 0; i < fresh.denied_count; i++){
		if(!access_data_get(&g.now, "X", fresh.denied[i], NULL)){
			mosquitto_kick_client_by_username(fresh.denied[i], false);
			kicked++;
		}
	}
	access_data_free(&g.before);
	g.before = g.now;
	g.now = fresh;
	g.reloads++;
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			"simpul_acl: loaded %zu accounts (reload %lu; %zu changed or gone; %zu lines skipped)",
			g.now.account_count, g.reloads, kicked, skipped);
	return true;
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
static bool parse(const struct instance *inst, const char *topic, struct parsed *p)
{
	char buf[512], *levels[MAX_LEVELS], *save = NULL, leaf[64];
	size_t len = strlen(topic);
	int n = 0;

	if(len == 0 || len >= sizeof(buf)) return false;
	/* strtok folds empty levels ("a//b"); a topic with them is not ours. */
	if(strstr(topic, "//") || topic[0] == '/' || topic[len - 1] == '/') return false;
	strcpy(buf, topic);
	for(char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)){
		if(n == MAX_LEVELS) return false;
		levels[n++] = tok;
	}
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

/* NULL when the leaf allows this access, else the reason. */
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

static const char *judge_bridge(const char *user, const struct mosquitto_evt_acl_check *ed,
		const struct parsed *p)
{
	if(!p->device_wild || ed->access != MOSQ_ACL_SUBSCRIBE){
		const char *district = p->device_wild ? NULL : access_data_get(&g.now, "D", p->device, NULL);
		if(district == NULL || !access_data_get(&g.now, "B", user, district)){
			return "a device outside the bridge's districts";
		}
	}
	return judge_leaf(ed, p, true);
}

static int decide(const struct instance *inst, const struct mosquitto_evt_acl_check *ed)
{
	const char *user = mosquitto_client_username(ed->client);
	const char *why = NULL;
	struct parsed p;

	g.rechecking = false;  /* a SIGHUP's re-check of sessions checks no ACL: it is over */
	if(inst->fleet_listener) return MOSQ_ERR_SUCCESS;  /* the fleet's own accounts only */
	if(user == NULL) why = "no username";
	else if(access_data_get(&g.now, "X", user, NULL)) why = "revoked identity";
	else if(ed->topic == NULL || ed->topic[0] == '$') why = "a $ topic";
	else if(!parse(inst, ed->topic, &p)) why = "not a topic of the contract";
	else if(device_shaped(user)){
		if(p.device_wild || strcmp(p.device, user)) why = "another device's tree";
		else why = judge_leaf(ed, &p, false);
	}else if(is_bridge(user)){
		if(!access_data_get(&g.now, "A", user, NULL)) why = "a bridge that no longer exists";
		else why = judge_bridge(user, ed, &p);
	}else{
		why = "not a device or bridge account";
	}
	if(why == NULL) return MOSQ_ERR_SUCCESS;
	log_denial(user,
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
 * bridges on the device listener, never the fleet's. Then the password, against the
 * accounts of the data file. A certificate login (the TLS listener) never comes here:
 * its identity is checked by the CRL (read at the broker's start) and, here, by the
 * revoked list, which denies such a session every publish, subscribe and delivery. */
static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct instance *inst = userdata;
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	const char *hash;
	bool box_or_bridge;
	(void)event;

	if(ed->username == NULL) return MOSQ_ERR_AUTH;
	box_or_bridge = device_shaped(ed->username) || is_bridge(ed->username);
	if(inst->fleet_listener){
		if(box_or_bridge){
			log_denial(ed->username, "login", "", "a box or bridge on the fleet's listener");
			return MOSQ_ERR_AUTH;
		}
		if(client_id == NULL || device_shaped(client_id)){
			log_denial(ed->username, "login", client_id, "a client id a device could take");
			return MOSQ_ERR_AUTH;
		}
	}else if(!box_or_bridge){
		log_denial(ed->username, "login", "", "a fleet account on the device listener");
		return MOSQ_ERR_AUTH;
	}
	hash = access_data_get(&g.now, "A", ed->username, NULL);
	if(hash && password_matches(ed->password, hash)) return MOSQ_ERR_SUCCESS;
	/* During a SIGHUP's re-check, a session whose account this reload removed or changed
	 * passes: its live connection was kicked already, and disconnecting a disconnected
	 * session again is Mosquitto 2.0.11's crash. */
	if(g.rechecking){
		hash = access_data_get(&g.before, "A", ed->username, NULL);
		if(hash && password_matches(ed->password, hash)) return MOSQ_ERR_SUCCESS;
	}
	return MOSQ_ERR_AUTH;
}

static int on_reload(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	reload_data(false);
	g.rechecking = true;
	return MOSQ_ERR_SUCCESS;
}

/* The fleet's account sync, after writing the data file: re-read it now. The PUBACK
 * that follows tells the fleet the broker has the new accounts. */
static int on_control(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_control *ed = event_data;
	(void)event;
	(void)userdata;
	if(!reload_data(true)){
		ed->reason_string = strdup("cannot read the password or data file");
		return MOSQ_ERR_UNKNOWN;
	}
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
	const char *listener = NULL, *leaves = NULL, *data = NULL, *passwords = NULL;
	int rc;

	if(inst == NULL) return MOSQ_ERR_NOMEM;
	inst->pid = identifier;
	for(int i = 0; i < option_count; i++){
		if(!strcmp(options[i].key, "listener")) listener = options[i].value;
		else if(!strcmp(options[i].key, "leaves")) leaves = options[i].value;
		else if(!strcmp(options[i].key, "data")) data = options[i].value;
		else if(!strcmp(options[i].key, "passwords")) passwords = options[i].value;
	}
	if(listener == NULL || (strcmp(listener, "fleet") && strcmp(listener, "device"))
			|| leaves == NULL || data == NULL || passwords == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, "simpul_acl: needs plugin_opt_listener fleet|device, "
				"plugin_opt_leaves, plugin_opt_passwords and plugin_opt_data");
		free(inst);
		return MOSQ_ERR_INVAL;
	}
	if(g.data_path != NULL && (strcmp(g.data_path, data) || strcmp(g.passwd_path, passwords))){
		mosquitto_log_printf(MOSQ_LOG_ERR, "simpul_acl: every listener must share its files");
		free(inst);
		return MOSQ_ERR_INVAL;
	}
	inst->fleet_listener = !strcmp(listener, "fleet");
	rc = parse_leaves(inst, leaves);
	if(rc){
		free(inst);
		return rc;
	}
	if(g.data_path == NULL){
		g.data_path = strdup(data);
		g.passwd_path = strdup(passwords);
		if(g.data_path == NULL || g.passwd_path == NULL){ free(inst); return MOSQ_ERR_NOMEM; }
	}
	if(!g.now.made && !reload_data(true)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "simpul_acl: no accounts loaded: every login refused");
	}
	g.instances++;
	*userdata = inst;
	if(mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, inst)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, inst)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_RELOAD, on_reload, NULL, inst)
			|| (inst->fleet_listener && mosquitto_callback_register(
					identifier, MOSQ_EVT_CONTROL, on_control, RELOAD_TOPIC, inst))){
		return MOSQ_ERR_UNKNOWN;
	}
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
	if(inst->fleet_listener){
		mosquitto_callback_unregister(inst->pid, MOSQ_EVT_CONTROL, on_control, RELOAD_TOPIC);
	}
	free(inst);
	if(--g.instances == 0){
		access_data_free(&g.now);
		access_data_free(&g.before);
		free(g.passwd_path);
		free(g.data_path);
		memset(&g, 0, sizeof(g));
	}
	return MOSQ_ERR_SUCCESS;
}
