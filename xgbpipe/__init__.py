"""xgbpipe: the client of the XGBoost pipeline stack, and the local cloud that runs it."""
