"""Alert channels behind one ``Notifier`` contract; see ``base``."""
