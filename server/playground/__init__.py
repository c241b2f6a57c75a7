"""The private chat playground: one page and its assets, served by the gateway, talking only to this origin."""
