"""Operating the market: what operators and their monitors read about all apps (metrics).
It sits above every app, so it may import any of them; none imports it."""
