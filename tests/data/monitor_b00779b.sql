-- A monitor database as written by spasmwatch at commit b00779b (schema version 1,
-- with the tables other modules created on first use), made by running that
-- version's own code (tests/data/make_monitor_b00779b.py).
BEGIN TRANSACTION;
CREATE TABLE alarm_deliveries (id INTEGER PRIMARY KEY, t REAL NOT NULL, channel TEXT NOT NULL, level TEXT NOT NULL, kind TEXT NOT NULL, repeat INTEGER NOT NULL, ok INTEGER, detail TEXT NOT NULL);
INSERT INTO "alarm_deliveries" VALUES(1,1772392016.5,'audio','alarm','spasm_cluster',0,1,'played');
INSERT INTO "alarm_deliveries" VALUES(2,1772392017.0,'apprise','alarm','spasm_cluster',0,0,'timeout');
CREATE TABLE alarm_transitions (id INTEGER PRIMARY KEY, t REAL NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT NOT NULL, source TEXT NOT NULL, details TEXT NOT NULL);
INSERT INTO "alarm_transitions" VALUES(1,1772392016.0,'watching','alarm','spasm_cluster','engine','{"cluster": 1}');
INSERT INTO "alarm_transitions" VALUES(2,1772392040.0,'alarm','acknowledged','ack','web','{}');
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, t REAL NOT NULL, level TEXT NOT NULL,
    kind TEXT NOT NULL, message TEXT NOT NULL, cluster_id INTEGER,
    event_seqs TEXT NOT NULL, details TEXT NOT NULL
);
INSERT INTO "alerts" VALUES(1,'dev',1772392016.0,'alarm','spasm_cluster','3 spasm-like movements',1,'[300, 301, 302]','{"n": 3}');
CREATE TABLE annotations (
    id INTEGER PRIMARY KEY, created_at REAL NOT NULL, target TEXT NOT NULL,
    target_id INTEGER NOT NULL, label TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    video TEXT NOT NULL DEFAULT ''
);
INSERT INTO "annotations" VALUES(1,1772400600.0,'cluster',1,'real_episode','arms up <b>twice</b>','VID_1.mp4 0:10');
CREATE TABLE clips (
    id INTEGER PRIMARY KEY, alert_t REAL NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    path TEXT NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL
);
INSERT INTO "clips" VALUES(1,1772392016.0,1772391986.0,1772392046.0,'clips/alarm.mp4','/dev/video0',1.79617987864595937729e+09);
CREATE TABLE clusters (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, t_start REAL NOT NULL, t_end REAL NOT NULL,
    n_events INTEGER NOT NULL, n_spasm_like INTEGER NOT NULL, n_jerk INTEGER NOT NULL,
    n_movement INTEGER NOT NULL, intervals_s TEXT NOT NULL, spasm_intervals_s TEXT NOT NULL,
    first_seq INTEGER, last_seq INTEGER, closed INTEGER NOT NULL
);
INSERT INTO "clusters" VALUES(1,'dev',1772392000.0,1772392017.2,3,3,0,0,'[8.0, 8.0]','[8.0, 8.0]',300,302,1);
CREATE TABLE counters (
    device TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (device, name)
);
INSERT INTO "counters" VALUES('dev','lost',2);
INSERT INTO "counters" VALUES('dev','decode_error:crc',1);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    t_ms INTEGER NOT NULL, cls TEXT NOT NULL, state TEXT NOT NULL, peaks INTEGER NOT NULL,
    duration_s REAL NOT NULL, peak_mg INTEGER NOT NULL, energy_mgs INTEGER NOT NULL,
    tilt_mg INTEGER NOT NULL, excursion_mg INTEGER NOT NULL, still_s INTEGER NOT NULL,
    received_at REAL, UNIQUE (device, seq, t)
);
INSERT INTO "events" VALUES(1,'dev',300,1772392000.0,400000,'spasm_like','asleep',2,1.2,900,400,150,500,3,NULL);
INSERT INTO "events" VALUES(2,'dev',301,1772392008.0,408000,'spasm_like','asleep',2,1.2,900,400,150,500,3,NULL);
INSERT INTO "events" VALUES(3,'dev',302,1772392016.0,416000,'spasm_like','asleep',2,1.2,900,400,150,500,3,NULL);
CREATE TABLE markers (
    id INTEGER PRIMARY KEY, date TEXT NOT NULL, text TEXT NOT NULL, created_at REAL NOT NULL
);
INSERT INTO "markers" VALUES(1,'2026-03-01','started treatment X',1772400600.0);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO "schema_version" VALUES(1);
CREATE TABLE snippets (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, alert_id INTEGER, alert_t REAL NOT NULL,
    t REAL NOT NULL, t_end REAL NOT NULL, rate_hz INTEGER NOT NULL, range_g INTEGER NOT NULL,
    expected INTEGER, complete INTEGER NOT NULL, samples TEXT NOT NULL,
    created_at REAL NOT NULL
);
INSERT INTO "snippets" VALUES(1,'dev',1,1772392016.0,1772391986.0,1772392016.0,50,4,3,1,'[[0.0, 0.0, 1.0], [0.5, 0.1, 1.2], [0.0, 0.0, 1.0]]',1.79617987864572119715e+09);
CREATE TABLE statuses (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    t_ms INTEGER NOT NULL, battery_mv INTEGER NOT NULL, flags TEXT NOT NULL,
    flags_raw INTEGER NOT NULL, buffer_pct INTEGER NOT NULL, heap_kb INTEGER NOT NULL,
    rate_hz INTEGER NOT NULL, range_g INTEGER NOT NULL, received_at REAL,
    UNIQUE (device, seq, t)
);
INSERT INTO "statuses" VALUES(1,'dev',200,1772391630.0,30000,3900,'charging',1,3,80,50,4,NULL);
CREATE TABLE summaries (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,
    t_ms INTEGER NOT NULL, period_s INTEGER NOT NULL, active_s INTEGER NOT NULL,
    events INTEGER NOT NULL, spasm_like INTEGER NOT NULL, peak_mg INTEGER NOT NULL,
    mean_mg INTEGER NOT NULL, state TEXT NOT NULL, received_at REAL,
    UNIQUE (device, seq, t)
);
INSERT INTO "summaries" VALUES(1,'dev',100,1772391660.0,60000,60,5,1,0,300,20,'settling',NULL);
INSERT INTO "summaries" VALUES(2,'dev',101,1772391720.0,120000,60,5,1,0,300,20,'settling',NULL);
INSERT INTO "summaries" VALUES(3,'dev',102,1772391780.0,180000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(4,'dev',103,1772391840.0,240000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(5,'dev',104,1772391900.0,300000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(6,'dev',105,1772391960.0,360000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(7,'dev',106,1772392020.0,420000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(8,'dev',107,1772392080.0,480000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(9,'dev',108,1772392140.0,540000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(10,'dev',109,1772392200.0,600000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(11,'dev',110,1772392260.0,660000,60,5,1,0,300,20,'asleep',NULL);
INSERT INTO "summaries" VALUES(12,'dev',111,1772392320.0,720000,60,5,1,0,300,20,'asleep',NULL);
CREATE INDEX events_by_time ON events (t);
CREATE INDEX alerts_by_time ON alerts (t);
CREATE INDEX annotations_by_target ON annotations (target, target_id);
CREATE INDEX snippets_by_alert ON snippets (alert_t);
COMMIT;
