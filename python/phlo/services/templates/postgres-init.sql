-- Dagster's database beside phlo's catalog (phlo_catalog), created on the first start.
CREATE DATABASE dagster OWNER phlo;
