//! The runtime behind the `switchboard` binary: configuration, the HTTP API,
//! the realtime transports, the admin API and the CLI's commands. A library so
//! that the binary, the API description's tests and the fuzz targets share one
//! build of it; its modules are the binary's, not a stable Rust API.

mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo_shop;
mod edge;
pub mod fuzz;
mod gate;
mod handlers;
mod http;
mod identity;
mod limits;
pub mod logging;
pub mod openapi;
mod otlp;
mod outbound;
mod realtime;
pub mod routes;
mod state;
mod telemetry;
mod tenancy;
mod tokens;
mod web;
