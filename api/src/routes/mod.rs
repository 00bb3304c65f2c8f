//! HTTP handlers: each parses, makes one call, and maps the result.

pub mod audit;
pub mod bootfiles;
pub mod bootstrap;
pub mod cluster;
pub mod enrollment;
pub mod events;
pub mod health;
pub mod nodes;
pub mod peer;
pub mod services;
pub mod spec;
pub mod systems;
