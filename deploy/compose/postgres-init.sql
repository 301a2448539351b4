-- docker-compose.yml: MLflow's backend store beside Taxonomist's metadata database.
CREATE DATABASE mlflow OWNER taxonomist;
