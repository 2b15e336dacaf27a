"""Queues: confirmed publishing (RabbitMQ, embedded SQLite) and consuming for the runtime."""
