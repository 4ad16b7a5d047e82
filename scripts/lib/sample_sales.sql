-- The sample data of the demo, the interop suite and bench/real_model.sh: 400 sales of five
-- products over 20 days, in demo.sales.
CREATE SCHEMA demo;
CREATE TABLE demo.sales (id serial PRIMARY KEY, day date, product text, quantity int, price numeric);
INSERT INTO demo.sales (day, product, quantity, price)
SELECT date '2026-11-01' + (g % 20), (ARRAY['kettle', 'teapot', 'mug', 'strainer', 'tea tin'])[1 + g % 5],
       1 + (g * 7) % 9, (ARRAY[49, 35, 9, 6, 12])[1 + g % 5]
  FROM generate_series(1, 400) g;
