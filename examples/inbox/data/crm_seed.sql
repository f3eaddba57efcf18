-- A small CRM for the reference project. Created on first use under .keel/crm.sqlite.
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    lifetime_value_usd REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE IF NOT EXISTS interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    happened_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS proposed_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    amount_usd REAL,
    requires_approval INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
INSERT OR IGNORE INTO customers VALUES
 ('C1001', 'ada@example.com', 'Ada Lovelace', 'business', 12400, 'active'),
 ('C1002', 'grace@example.com', 'Grace Hopper', 'pro', 3100, 'active'),
 ('C1003', 'alan@example.org', 'Alan Turing', 'free', 0, 'active'),
 ('C1004', 'edsger@example.net', 'Edsger Dijkstra', 'pro', 2890, 'active'),
 ('C1005', 'barbara@example.com', 'Barbara Liskov', 'business', 18750, 'active'),
 ('C1006', 'donald@example.org', 'Donald Knuth', 'pro', 990, 'past_due'),
 ('C1007', 'frances@example.com', 'Frances Allen', 'business', 22000, 'active'),
 ('C1008', 'ken@example.net', 'Ken Thompson', 'free', 0, 'active'),
 ('C1009', 'margaret@example.com', 'Margaret Hamilton', 'business', 15300, 'active'),
 ('C1010', 'john@example.org', 'John Backus', 'pro', 1450, 'cancelled');
INSERT OR IGNORE INTO interactions (id, customer_id, happened_at, kind, note) VALUES
 (1, 'C1001', '2026-09-02', 'order', 'Order #5531, 3 seats, 1,200 USD'),
 (2, 'C1001', '2026-10-14', 'ticket', 'Asked about SSO setup; resolved'),
 (3, 'C1002', '2026-10-20', 'order', 'Order #5602, annual plan, 310 USD'),
 (4, 'C1004', '2026-08-11', 'ticket', 'Billing address changed'),
 (5, 'C1005', '2026-11-01', 'order', 'Order #5710, 25 seats, 7,500 USD'),
 (6, 'C1006', '2026-11-05', 'billing', 'Card declined twice'),
 (7, 'C1007', '2026-10-30', 'ticket', 'Complained about slow exports'),
 (8, 'C1009', '2026-11-10', 'order', 'Order #5750, add-on, 640 USD'),
 (9, 'C1010', '2026-07-01', 'billing', 'Subscription cancelled at customer request');
