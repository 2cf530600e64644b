-- A small shop platform for retention tests: the tenant column is an integer (shop_id), a
-- table with a composite primary key is aged, a row filter decides what a category means,
-- orders share shipping labels, invoices (kept for bookkeeping) point at orders, and a
-- table the data map does not know (complaint) references orders. Loaded into a fresh
-- database of its own.

CREATE TABLE shop (
    shop_id  integer PRIMARY KEY,
    name     text NOT NULL
);

CREATE TABLE member (
    member_id  serial PRIMARY KEY,
    shop_id    integer NOT NULL REFERENCES shop (shop_id),
    email      text NOT NULL
);
CREATE INDEX member_shop_id ON member (shop_id);

-- One label per shipment; a shipment may carry several orders.
CREATE TABLE label (
    label_id  serial PRIMARY KEY,
    address   text NOT NULL
);

CREATE TABLE orders (
    order_id   serial PRIMARY KEY,
    shop_id    integer NOT NULL REFERENCES shop (shop_id),
    member_id  integer NOT NULL REFERENCES member (member_id),
    label_id   integer REFERENCES label (label_id),
    placed_at  timestamptz NOT NULL
);
CREATE INDEX orders_shop_placed ON orders (shop_id, placed_at);
CREATE INDEX orders_member_id ON orders (member_id);
CREATE INDEX orders_label_id ON orders (label_id);

CREATE TABLE order_line (
    order_id  integer NOT NULL REFERENCES orders (order_id),
    line_no   integer NOT NULL,
    item      text NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_note (
    note_id     serial PRIMARY KEY,
    order_id    integer NOT NULL REFERENCES orders (order_id),
    written_at  timestamptz NOT NULL,
    body        text NOT NULL
);
CREATE INDEX order_note_order_id ON order_note (order_id);

-- Kept for bookkeeping: an invoice outlives its order (the link is nullable).
CREATE TABLE invoice (
    invoice_id  serial PRIMARY KEY,
    shop_id     integer NOT NULL REFERENCES shop (shop_id),
    order_id    integer REFERENCES orders (order_id),
    amount      numeric(8, 2) NOT NULL
);
CREATE INDEX invoice_order_id ON invoice (order_id);

-- Not in the data map: a complaint holds on to the order it is about.
CREATE TABLE complaint (
    complaint_id  serial PRIMARY KEY,
    order_id      integer NOT NULL REFERENCES orders (order_id),
    body          text NOT NULL
);
CREATE INDEX complaint_order_id ON complaint (order_id);

-- Page visits, numbered per shop (composite key); anonymous ones have no member.
CREATE TABLE visit (
    shop_id    integer NOT NULL REFERENCES shop (shop_id),
    visit_no   integer NOT NULL,
    member_id  integer REFERENCES member (member_id),
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (shop_id, visit_no)
);
CREATE INDEX visit_member_id ON visit (member_id);
