BEGIN TRANSACTION;
CREATE TABLE ct_instances (
    session TEXT NOT NULL, name TEXT NOT NULL, task TEXT NOT NULL, status TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (session, name)
);
INSERT INTO "ct_instances" VALUES('upgrade-s1','t_welcomeAuthor#0','t_welcomeAuthor','abandoned','{"c":1796083210000,"f":["isAnonymous"],"m":{"abandoned_at":1796083210.0},"s":"abandoned"}');
INSERT INTO "ct_instances" VALUES('upgrade-s1','t_registerManuscript#0','t_registerManuscript','finished','{"b":10000,"c":1796083220000,"d":0,"e":20000,"h":"celery@old-worker","i":"f38b2ffc-80a4-4f5a-91c9-bc701e7ea419","k":{"manuscriptSubmitted":{"author":{"contact":{"email":null,"fax":null},"languages":["fr","\u65e5\u672c\u8a9e"],"name":"Zo\u00eb \u00d1\u00fa\u00f1ez"},"draft":true,"pages":312,"ratio":0.75,"tags":[],"title":"\u00dcber Stra\u00dfen \u2014 \u6771\u4eac\u306e\u591c"}},"n":1,"r":{"chapters":{"expected":2,"names":["Anfang","\u7d42\u308f\u308a"]},"manuscriptId":"M-0042","title":"\u00dcber Stra\u00dfen \u2014 \u6771\u4eac\u306e\u591c"},"s":"finished","y":0}');
INSERT INTO "ct_instances" VALUES('upgrade-s1','t_payAdvance#0','t_payAdvance','unstarted','{"a":["contractSigned"],"c":1796083240000,"k":{"t_registerManuscript":{"chapters":{"expected":2,"names":["Anfang","終わり"]},"manuscriptId":"M-0042","title":"Über Straßen — 東京の夜"}},"s":"unstarted"}');
INSERT INTO "ct_instances" VALUES('upgrade-s1','t_typesetChapter#0','t_typesetChapter','scheduled','{"c":1796083240000,"d":10000,"i":"f3f49249-dc28-4f90-a5ae-c7978306d03b","k":{"chapterUploaded":{"chapter":1,"title":"Anfang","words":4200},"t_registerManuscript":{"chapters":{"expected":2,"names":["Anfang","終わり"]},"manuscriptId":"M-0042","title":"Über Straßen — 東京の夜"}},"s":"scheduled"}');
INSERT INTO "ct_instances" VALUES('upgrade-s1','t_typesetChapter#1','t_typesetChapter','running','{"b":10000,"c":1796083260000,"d":0,"h":"celery@old-worker","i":"e5121482-3929-4d22-a255-accb1a466884","k":{"chapterUploaded":{"chapter":2,"layout":{"size":12},"title":"終わり","words":3900},"t_registerManuscript":{"chapters":{"expected":2,"names":["Anfang","終わり"]},"manuscriptId":"M-0042","title":"Über Straßen — 東京の夜"}},"n":1,"s":"running","y":0}');
INSERT INTO "ct_instances" VALUES('upgrade-s2','t_registerManuscript#0','t_registerManuscript','failed','{"b":10000,"c":1796084200000,"d":0,"g":20000,"h":"celery@old-worker","i":"6bad6be2-8e7a-46e9-9f19-950499dd251d","k":{"manuscriptSubmitted":{"author":{"name":"Ana"},"title":"Second Thoughts"}},"m":{"exc_message":"catalogue server refused: « connexion refusée »","exc_module":"builtins","exc_type":"ConnectionError","traceback":"Traceback (most recent call last):\n  File \"/work/scratch/make_fixtures.py\", line 149, in fail\n    old_task_body(exc)\n  File \"/work/scratch/make_fixtures.py\", line 142, in old_task_body\n    raise exc\nConnectionError: catalogue server refused: « connexion refusée »\n"},"n":1,"s":"failed","y":0}');
INSERT INTO "ct_instances" VALUES('upgrade-s2','t_welcomeAuthor#0','t_welcomeAuthor','skipped','{"b":30000,"c":1796084200000,"d":0,"g":40000,"h":"celery@old-worker","i":"d7a7a3cc-8c3d-4f16-9293-de8fc88b2875","k":{"manuscriptSubmitted":{"author":{"name":"Ana"},"title":"Second Thoughts"}},"m":{"exc_message":"no e-mail address for Ana","exc_module":"builtins","exc_type":"ValueError","skipped_at":1796084250.0,"traceback":"Traceback (most recent call last):\n  File \"/work/scratch/make_fixtures.py\", line 149, in fail\n    old_task_body(exc)\n  File \"/work/scratch/make_fixtures.py\", line 142, in old_task_body\n    raise exc\nValueError: no e-mail address for Ana\n"},"n":1,"s":"skipped","y":0}');
INSERT INTO "ct_instances" VALUES('upgrade-s2','t_syncCatalog#0','t_syncCatalog','replayed','{"b":10000,"c":1796084260000,"d":0,"g":20000,"h":"celery@old-worker","i":"7dabe929-c4a3-44bf-86cd-75e9bb049a79","k":{"catalogSyncRequested":{"ids":[3,1,2],"since":"2026-11-01"}},"m":{"exc_message":"catalog timed out after 30 s","exc_module":"builtins","exc_type":"TimeoutError","replayed_at":1796084290.0,"replayed_by":"t_syncCatalog#1","traceback":"Traceback (most recent call last):\n  File \"/work/scratch/make_fixtures.py\", line 149, in fail\n    old_task_body(exc)\n  File \"/work/scratch/make_fixtures.py\", line 142, in old_task_body\n    raise exc\nTimeoutError: catalog timed out after 30 s\n"},"n":1,"s":"replayed","y":0}');
INSERT INTO "ct_instances" VALUES('upgrade-s2','t_syncCatalog#1','t_syncCatalog','scheduled','{"c":1796084290000,"d":0,"i":"70eb9a0a-9626-4ae6-85e8-18fac0433cbd","k":{"catalogSyncRequested":{"ids":[3,1,2],"since":"2026-11-01"}},"p":"t_syncCatalog#0","s":"scheduled"}');
INSERT INTO "ct_instances" VALUES('upgrade-ünïcode-三','t_typesetChapter#0','t_typesetChapter','unstarted','{"a":["t_registerManuscript"],"c":1796085200000,"k":{"chapterUploaded":{"chapter":1,"title":"Prólogo"}},"s":"unstarted"}');
INSERT INTO "ct_instances" VALUES('upgrade-ünïcode-三','t_typesetChapter#1','t_typesetChapter','unstarted','{"a":["t_registerManuscript"],"c":1796085210000,"k":{"chapterUploaded":{"chapter":2,"title":"Epílogo"}},"s":"unstarted"}');
INSERT INTO "ct_instances" VALUES('upgrade-ünïcode-三','t_registerManuscript#0','t_registerManuscript','scheduled','{"c":1796085220000,"d":0,"i":"14aa4e71-9d3c-4dec-80a6-1f933d6c51e3","k":{"manuscriptSubmitted":{"author":{"name":"Liú"},"title":"三体"}},"s":"scheduled"}');
INSERT INTO "ct_instances" VALUES('upgrade-ünïcode-三','t_welcomeAuthor#0','t_welcomeAuthor','finished','{"b":10000,"c":1796085220000,"d":0,"e":20000,"h":"celery@old-worker","i":"1919e93a-d117-45ad-8988-93101c593af5","k":{"manuscriptSubmitted":{"author":{"name":"Liú"},"title":"三体"}},"n":1,"r":"¡Bienvenida, Liú!","s":"finished","y":0}');
INSERT INTO "ct_instances" VALUES('upgrade-ünïcode-三','t_sendGift#0','t_sendGift','scheduled','{"c":1796085240000,"d":0,"i":"e4163207-d094-4996-82f0-ee99731c9452","k":{"t_welcomeAuthor":{}},"s":"scheduled"}');
INSERT INTO "ct_instances" VALUES('upgrade-s4-idle','t_welcomeAuthor#0','t_welcomeAuthor','abandoned','{"c":1796086200000,"f":["isAnonymous"],"m":{"abandoned_at":1796086200.0},"s":"abandoned"}');
INSERT INTO "ct_instances" VALUES('upgrade-s4-idle','t_payAdvance#0','t_payAdvance','unstarted','{"a":["t_registerManuscript"],"c":1796086210000,"k":{"contractSigned":{"advance":{"amount":0,"currency":"EUR"}}},"s":"unstarted"}');
CREATE TABLE ct_sessions (
    session TEXT PRIMARY KEY, configs TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
INSERT INTO "ct_sessions" VALUES('upgrade-s1','{"t_notifyEditor":{"after":["t_payAdvance"],"run":"upgrade_fixture.notify_editor","withParams":{"t_payAdvance":{"editor":"Zoë Ñúñez"}}}}',1796083200.0,1796083270.0);
INSERT INTO "ct_sessions" VALUES('upgrade-s2',NULL,1796084200.0,1796084290.0);
INSERT INTO "ct_sessions" VALUES('upgrade-ünïcode-三',NULL,1796085200.0,1796085240.0);
INSERT INTO "ct_sessions" VALUES('upgrade-s4-idle',NULL,1796086200.0,1796086210.0);
CREATE TABLE ct_tasks (
    session TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session, name)
) WITHOUT ROWID;
INSERT INTO "ct_tasks" VALUES('upgrade-s1','t_payAdvance','{"abandoned":false,"name":"t_payAdvance","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-s1','t_registerManuscript','{"abandoned":false,"name":"t_registerManuscript","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-s1','t_typesetChapter','{"abandoned":false,"name":"t_typesetChapter","next_number":2}');
INSERT INTO "ct_tasks" VALUES('upgrade-s1','t_welcomeAuthor','{"abandoned":true,"name":"t_welcomeAuthor","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-s2','t_registerManuscript','{"abandoned":false,"name":"t_registerManuscript","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-s2','t_syncCatalog','{"abandoned":false,"name":"t_syncCatalog","next_number":2}');
INSERT INTO "ct_tasks" VALUES('upgrade-s2','t_welcomeAuthor','{"abandoned":false,"name":"t_welcomeAuthor","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-s4-idle','t_payAdvance','{"abandoned":false,"name":"t_payAdvance","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-s4-idle','t_welcomeAuthor','{"abandoned":true,"name":"t_welcomeAuthor","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-ünïcode-三','t_registerManuscript','{"abandoned":false,"name":"t_registerManuscript","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-ünïcode-三','t_sendGift','{"abandoned":false,"name":"t_sendGift","next_number":1}');
INSERT INTO "ct_tasks" VALUES('upgrade-ünïcode-三','t_typesetChapter','{"abandoned":false,"name":"t_typesetChapter","next_number":2}');
INSERT INTO "ct_tasks" VALUES('upgrade-ünïcode-三','t_welcomeAuthor','{"abandoned":false,"name":"t_welcomeAuthor","next_number":1}');
CREATE TABLE ct_triggers (
    session TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session, name)
) WITHOUT ROWID;
INSERT INTO "ct_triggers" VALUES('upgrade-s1','chapterUploaded','{"count":2,"kwargs":{"chapter":2,"layout":{"size":12},"title":"終わり","words":3900},"name":"chapterUploaded"}');
INSERT INTO "ct_triggers" VALUES('upgrade-s1','isAnonymous','{"count":1,"kwargs":{},"name":"isAnonymous"}');
INSERT INTO "ct_triggers" VALUES('upgrade-s1','manuscriptSubmitted','{"count":1,"kwargs":{"author":{"contact":{"email":null,"fax":null},"languages":["fr","\u65e5\u672c\u8a9e"],"name":"Zo\u00eb \u00d1\u00fa\u00f1ez"},"draft":true,"pages":312,"ratio":0.75,"tags":[],"title":"\u00dcber Stra\u00dfen \u2014 \u6771\u4eac\u306e\u591c"},"name":"manuscriptSubmitted"}');
INSERT INTO "ct_triggers" VALUES('upgrade-s1','t_registerManuscript','{"count":1,"kwargs":{"chapters":{"expected":2,"names":["Anfang","終わり"]},"manuscriptId":"M-0042","title":"Über Straßen — 東京の夜"},"name":"t_registerManuscript"}');
INSERT INTO "ct_triggers" VALUES('upgrade-s2','catalogSyncRequested','{"count":1,"kwargs":{"ids":[3,1,2],"since":"2026-11-01"},"name":"catalogSyncRequested"}');
INSERT INTO "ct_triggers" VALUES('upgrade-s2','manuscriptSubmitted','{"count":1,"kwargs":{"author":{"name":"Ana"},"title":"Second Thoughts"},"name":"manuscriptSubmitted"}');
INSERT INTO "ct_triggers" VALUES('upgrade-s4-idle','contractSigned','{"count":1,"kwargs":{"advance":{"amount":0,"currency":"EUR"}},"name":"contractSigned"}');
INSERT INTO "ct_triggers" VALUES('upgrade-s4-idle','isAnonymous','{"count":1,"kwargs":{},"name":"isAnonymous"}');
INSERT INTO "ct_triggers" VALUES('upgrade-ünïcode-三','chapterUploaded','{"count":2,"kwargs":{"chapter":2,"title":"Epílogo"},"name":"chapterUploaded"}');
INSERT INTO "ct_triggers" VALUES('upgrade-ünïcode-三','manuscriptSubmitted','{"count":1,"kwargs":{"author":{"name":"Liú"},"title":"三体"},"name":"manuscriptSubmitted"}');
INSERT INTO "ct_triggers" VALUES('upgrade-ünïcode-三','t_welcomeAuthor','{"count":1,"kwargs":{},"name":"t_welcomeAuthor"}');
CREATE TABLE ct_waiting (
    session TEXT NOT NULL, task TEXT NOT NULL, trigger TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (session, task, trigger, name)
) WITHOUT ROWID;
INSERT INTO "ct_waiting" VALUES('upgrade-s1','t_payAdvance','contractSigned','t_payAdvance#0');
INSERT INTO "ct_waiting" VALUES('upgrade-s4-idle','t_payAdvance','t_registerManuscript','t_payAdvance#0');
INSERT INTO "ct_waiting" VALUES('upgrade-ünïcode-三','t_typesetChapter','t_registerManuscript','t_typesetChapter#0');
INSERT INTO "ct_waiting" VALUES('upgrade-ünïcode-三','t_typesetChapter','t_registerManuscript','t_typesetChapter#1');
CREATE INDEX ct_waiting_by_instance ON ct_waiting (session, name);
COMMIT;
