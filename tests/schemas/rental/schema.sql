-- A rental shop platform in the style of the public "pagila" sample database, written for
-- Lethe's correctness tests and not around Lethe's own sample: single tenant (no org or
-- tenant column anywhere), integer keys, composite primary keys and a composite foreign key,
-- a partitioned table, a self-reference, NOT NULL foreign keys, rows linked to two people.
-- Every foreign key column is indexed (where the primary key does not already lead with it).
-- Loaded into a fresh database of its own.

CREATE TABLE address (
    address_id   serial PRIMARY KEY,
    address      text NOT NULL,
    district     text NOT NULL,
    city         text NOT NULL,
    postal_code  varchar(10),
    phone        varchar(20)
);

CREATE TABLE store (
    store_id    serial PRIMARY KEY,
    name        text NOT NULL,
    address_id  integer NOT NULL REFERENCES address (address_id)
);
CREATE INDEX store_address_id ON store (address_id);

-- Staff report to a manager (a self-reference) and live at an address like customers do.
CREATE TABLE staff (
    staff_id    serial PRIMARY KEY,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text,
    store_id    integer NOT NULL REFERENCES store (store_id),
    address_id  integer NOT NULL REFERENCES address (address_id),
    manager_id  integer REFERENCES staff (staff_id)
);
CREATE INDEX staff_store_id ON staff (store_id);
CREATE INDEX staff_address_id ON staff (address_id);
CREATE INDEX staff_manager_id ON staff (manager_id);

CREATE TABLE customer (
    customer_id  serial PRIMARY KEY,
    store_id     integer NOT NULL REFERENCES store (store_id),
    first_name   text NOT NULL,
    last_name    text NOT NULL,
    email        text,
    address_id   integer REFERENCES address (address_id),  -- several customers may share one
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_store_id ON customer (store_id);
CREATE INDEX customer_address_id ON customer (address_id);
CREATE INDEX customer_email ON customer (lower(email));

CREATE TABLE film (
    film_id      serial PRIMARY KEY,
    title        text NOT NULL,
    rental_rate  numeric(4, 2) NOT NULL DEFAULT 4.99
);

-- A copy of a film is numbered within its store: composite primary key.
CREATE TABLE inventory (
    store_id  integer NOT NULL REFERENCES store (store_id),  -- leads the primary key
    item_no   integer NOT NULL,
    film_id   integer NOT NULL REFERENCES film (film_id),
    PRIMARY KEY (store_id, item_no)
);
CREATE INDEX inventory_film_id ON inventory (film_id);

CREATE TABLE rental (
    rental_id    serial PRIMARY KEY,
    rented_at    timestamptz NOT NULL,
    store_id     integer NOT NULL,
    item_no      integer NOT NULL,
    customer_id  integer NOT NULL REFERENCES customer (customer_id),
    staff_id     integer NOT NULL REFERENCES staff (staff_id),
    returned_at  timestamptz,
    FOREIGN KEY (store_id, item_no) REFERENCES inventory (store_id, item_no)
);
CREATE INDEX rental_item ON rental (store_id, item_no);
CREATE INDEX rental_customer_id ON rental (customer_id);
CREATE INDEX rental_staff_id ON rental (staff_id);

-- Payments are partitioned by year on paid_at, so the primary key includes paid_at. The
-- payer (customer_id, NOT NULL) need not be the customer of the rental paid for.
CREATE TABLE payment (
    payment_id   serial,
    paid_at      timestamptz NOT NULL,
    customer_id  integer NOT NULL REFERENCES customer (customer_id),
    rental_id    integer REFERENCES rental (rental_id),
    staff_id     integer NOT NULL REFERENCES staff (staff_id),
    amount       numeric(6, 2) NOT NULL,
    card_holder  text,
    PRIMARY KEY (payment_id, paid_at)
) PARTITION BY RANGE (paid_at);
CREATE TABLE payment_2025 PARTITION OF payment FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE payment_2026 PARTITION OF payment FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE payment_other PARTITION OF payment DEFAULT;
CREATE INDEX payment_customer_id ON payment (customer_id);
CREATE INDEX payment_rental_id ON payment (rental_id);
CREATE INDEX payment_staff_id ON payment (staff_id);

-- Who brought whom: one row, two people.
CREATE TABLE referral (
    referrer_id  integer NOT NULL REFERENCES customer (customer_id),  -- leads the primary key
    referred_id  integer NOT NULL REFERENCES customer (customer_id),
    referred_at  timestamptz NOT NULL,
    PRIMARY KEY (referrer_id, referred_id),
    CHECK (referrer_id <> referred_id)
);
CREATE INDEX referral_referred_id ON referral (referred_id);

-- The rows every installation has: the head office, and the tombstone customer that kept
-- payments are reassigned to when their customer is erased (id 0: never a sequence value).
INSERT INTO address (address, district, city) VALUES ('1 Head Office Road', 'Centre', 'Lethe');
INSERT INTO store (name, address_id) VALUES ('Head office', 1);
INSERT INTO customer (customer_id, store_id, first_name, last_name, email, address_id, active)
VALUES (0, 1, 'deleted', 'customer', NULL, NULL, false);
