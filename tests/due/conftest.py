from notice_servers import plain_smtp, smtp_server, webhook_receiver  # noqa: F401  (fixtures)
