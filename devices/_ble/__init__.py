"""The Bluetooth LE link layer of the app: bleak, its backends, and nothing else imports bleak."""
