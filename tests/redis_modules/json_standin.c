/*
 * A stand-in for the RedisJSON module, for tests only: a module data type with RedisJSON's
 * type name, "ReJSON-RL", so `TYPE key` answers what it answers under RedisJSON, and the two
 * commands the sweep and its tests use, with RedisJSON's documented replies (RESP2):
 *
 *   JSON.SET key $ <json>   stores the document as given (no parsing, no paths)   +OK
 *   JSON.GET key            the document, serialized (the legacy root path)        bulk string
 *
 * It is not RedisJSON: it neither parses nor normalises JSON. No RedisJSON build can be installed
 * where the tests run (not in Debian, not on PyPI), so this proves the sweep's handling of such
 * keys, not its compatibility with every RedisJSON version.
 *
 * The few module API entry points used are declared here and resolved by name through the
 * server's RedisModule_GetApi, which is how every module binds to the API. No header is
 * included, so a bare compiler builds it (no C library headers needed).
 */
typedef __SIZE_TYPE__ size_t;
#define NULL ((void *)0)

#define OK 0
#define ERR 1
#define APIVER_1 1
#define KEY_READ 1
#define KEY_WRITE 2
#define KEYTYPE_EMPTY 0

typedef struct Ctx Ctx;
typedef struct Str Str;
typedef struct Key Key;
typedef struct Type Type;

typedef struct {
    unsigned long long version; /* 1: only the members below are read */
    void *rdb_load;
    void *rdb_save;
    void *aof_rewrite;
    void *mem_usage;
    void *digest;
    void (*free)(void *value);
} TypeMethods;

static int (*GetApi)(const char *, void *);
static void (*SetModuleAttribs)(Ctx *, const char *, int, int);
static int (*CreateCommand)(Ctx *, const char *, int (*)(Ctx *, Str **, int), const char *, int, int, int);
static Type *(*CreateDataType)(Ctx *, const char *, int, TypeMethods *);
static Key *(*OpenKey)(Ctx *, Str *, int);
static void (*CloseKey)(Key *);
static int (*KeyType)(Key *);
static Type *(*ModuleTypeGetType)(Key *);
static void *(*ModuleTypeGetValue)(Key *);
static int (*ModuleTypeSetValue)(Key *, Type *, void *);
static const char *(*StringPtrLen)(const Str *, size_t *);
static int (*ReplyWithStringBuffer)(Ctx *, const char *, size_t);
static int (*ReplyWithSimpleString)(Ctx *, const char *);
static int (*ReplyWithNull)(Ctx *);
static int (*ReplyWithError)(Ctx *, const char *);
static int (*WrongArity)(Ctx *);
static void *(*Alloc)(size_t);
static void (*Free)(void *);

static Type *json_type;

typedef struct {
    size_t len;
    char text[];
} Doc;

static void doc_free(void *value) { Free(value); }

static int json_set(Ctx *ctx, Str **argv, int argc) {
    if (argc != 4) return WrongArity(ctx);
    size_t plen, len;
    const char *path = StringPtrLen(argv[2], &plen);
    if (!((plen == 1 && (path[0] == '$' || path[0] == '.')))) {
        return ReplyWithError(ctx, "ERR this stand-in sets whole documents only ($)");
    }
    const char *text = StringPtrLen(argv[3], &len);
    Key *key = OpenKey(ctx, argv[1], KEY_READ | KEY_WRITE);
    if (KeyType(key) != KEYTYPE_EMPTY && ModuleTypeGetType(key) != json_type) {
        CloseKey(key);
        return ReplyWithError(ctx, "WRONGTYPE Operation against a key holding the wrong kind of value");
    }
    Doc *doc = Alloc(sizeof(Doc) + len);
    doc->len = len;
    __builtin_memcpy(doc->text, text, len);
    ModuleTypeSetValue(key, json_type, doc); /* frees a previous document through doc_free */
    CloseKey(key);
    return ReplyWithSimpleString(ctx, "OK");
}

static int json_get(Ctx *ctx, Str **argv, int argc) {
    if (argc != 2) return WrongArity(ctx); /* paths are not offered */
    Key *key = OpenKey(ctx, argv[1], KEY_READ);
    int rc;
    if (KeyType(key) == KEYTYPE_EMPTY) {
        rc = ReplyWithNull(ctx);
    } else if (ModuleTypeGetType(key) != json_type) {
        rc = ReplyWithError(ctx, "WRONGTYPE Operation against a key holding the wrong kind of value");
    } else {
        Doc *doc = ModuleTypeGetValue(key);
        rc = ReplyWithStringBuffer(ctx, doc->text, doc->len);
    }
    CloseKey(key);
    return rc;
}

#define BIND(name) GetApi("RedisModule_" #name, (void *)&name)

int RedisModule_OnLoad(Ctx *ctx, Str **argv, int argc) {
    (void)argv;
    (void)argc;
    GetApi = (int (*)(const char *, void *))((void **)ctx)[0];
    if (BIND(SetModuleAttribs) || BIND(CreateCommand) || BIND(CreateDataType) || BIND(OpenKey) ||
        BIND(CloseKey) || BIND(KeyType) || BIND(ModuleTypeGetType) || BIND(ModuleTypeGetValue) ||
        BIND(ModuleTypeSetValue) || BIND(StringPtrLen) || BIND(ReplyWithStringBuffer) ||
        BIND(ReplyWithSimpleString) || BIND(ReplyWithNull) || BIND(ReplyWithError) || BIND(WrongArity) ||
        BIND(Alloc) || BIND(Free)) {
        return ERR;
    }
    SetModuleAttribs(ctx, "jsonstandin", 1, APIVER_1);
    TypeMethods methods = {.version = 1, .free = doc_free};
    json_type = CreateDataType(ctx, "ReJSON-RL", 0, &methods);
    if (json_type == NULL) return ERR;
    if (CreateCommand(ctx, "json.set", json_set, "write deny-oom", 1, 1, 1) == ERR) return ERR;
    if (CreateCommand(ctx, "json.get", json_get, "readonly", 1, 1, 1) == ERR) return ERR;
    return OK;
}
