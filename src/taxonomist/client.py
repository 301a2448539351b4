"""A typed Python client for the Taxonomist REST API.

    from taxonomist.client import Client

    client = Client.login("http://localhost:8000", "alice", "password")
    ds = client.upload_dataset("apps.csv", target="prime_genre")
    job = client.wait_job(client.start_job(ds["dataset"]["id"], "apps")["id"])
    client.predict("apps", {"track_name": "Chess", "app_desc": "..."})

Errors come back as the package's exceptions (``ModelNotFoundError``, ``DataError``, ...),
with the server's message and details.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from taxonomist import errors
from taxonomist.errors import TaxonomistError

Json = dict[str, Any]
RETRIEVAL = "/api/v1/retrieval"
FINISHED = {"succeeded", "failed", "cancelled"}


def _error_classes() -> dict[str, type[TaxonomistError]]:
    out: dict[str, type[TaxonomistError]] = {}
    stack: list[type[TaxonomistError]] = [TaxonomistError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return out


_BY_STATUS = {
    400: errors.UserInputError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.PayloadTooLargeError,
    422: errors.InvalidParameterError,
    503: errors.ServiceUnavailableError,
}


def error_from_response(response: httpx.Response) -> TaxonomistError:
    """The exception the server's ``{"error": {...}}`` body stands for."""
    try:
        body = response.json()["error"]
        code, message, details = body["code"], body["message"], body.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "", f"HTTP {response.status_code}: {response.text[:300]}", {}
    cls = _error_classes().get(code) or _BY_STATUS.get(response.status_code, TaxonomistError)
    exc = cls.__new__(cls)
    TaxonomistError.__init__(exc, message, details=details)
    exc.status = response.status_code
    return exc


class Client:
    """One user's session with a Taxonomist server (``url``) through a bearer ``token``."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 60.0, source: str = "api"
    ) -> None:
        self.url = url.rstrip("/")
        # source: who the server logs predictions as coming from (api, ui or cli)
        headers = {"X-Taxonomist-Source": source}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def login(cls, url: str, username: str, password: str, **kwargs: Any) -> Client:
        client = cls(url, **kwargs)
        body = client._call(
            "POST", "/api/v1/auth/login", json={"username": username, "password": password}
        )
        client._http.headers["Authorization"] = f"Bearer {body['access_token']}"
        return client

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.ServiceUnavailableError(
                f"Cannot reach the Taxonomist server at {self.url}: {exc}. Is it running "
                "('taxonomist serve')?"
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _post_file(
        self, path: str, data: str | Path | bytes, filename: str | None, form: dict[str, str]
    ) -> httpx.Response:
        """A multipart POST of a file given as a path (streamed) or as bytes (``filename``)."""
        if isinstance(data, bytes):
            files = {"file": (filename or "data.csv", data)}
            return self._request("POST", path, files=files, data=form)
        source = Path(data)
        with source.open("rb") as f:
            return self._request("POST", path, files={"file": (source.name, f)}, data=form)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- system ------------------------------------------------------------------------------
    def health(self) -> Json:
        return self._call("GET", "/health")

    def ready(self) -> Json:
        response = self._http.get("/ready")
        return response.json()

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text

    # -- auth and users ----------------------------------------------------------------------
    def change_password(self, old_password: str, new_password: str) -> Json:
        """Set a new password; every other token of yours is revoked."""
        body = {"old_password": old_password, "new_password": new_password}
        return self._call("POST", "/api/v1/auth/password", json=body)

    def me(self) -> Json:
        return self._call("GET", "/api/v1/auth/me")

    def logout(self) -> None:
        self._call("POST", "/api/v1/auth/logout")

    def create_token(self, name: str, expires_days: float | None = 90) -> Json:
        return self._call(
            "POST", "/api/v1/auth/tokens", json={"name": name, "expires_days": expires_days}
        )

    def list_tokens(self) -> list[Json]:
        return self._call("GET", "/api/v1/auth/tokens")

    def revoke_token(self, token_id: int) -> None:
        self._call("DELETE", f"/api/v1/auth/tokens/{token_id}")

    def create_user(self, username: str, password: str, role: str = "member") -> Json:
        return self._call(
            "POST", "/api/v1/users", json={"username": username, "password": password, "role": role}
        )

    def list_users(self) -> list[Json]:
        return self._call("GET", "/api/v1/users")

    def update_user(
        self,
        user_id: int,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> Json:
        body = {
            k: v
            for k, v in {"role": role, "disabled": disabled, "password": password}.items()
            if v is not None
        }
        return self._call("PATCH", f"/api/v1/users/{user_id}", json=body)

    # -- datasets ----------------------------------------------------------------------------
    def upload_dataset(
        self,
        data: str | Path | bytes | Any,
        *,
        name: str | None = None,
        target: str | None = None,
        roles: dict[str, str] | None = None,
        filename: str | None = None,
    ) -> Json:
        """Upload a file (a path, or its bytes with ``filename``) or a DataFrame (sent as CSV);
        returns the validation report."""
        form = {k: v for k, v in {"name": name, "target": target}.items() if v}
        if roles:
            form["roles"] = json.dumps(roles)
        if not isinstance(data, (bytes, str, Path)):  # a DataFrame
            data, filename = data.to_csv(index=False).encode(), "data.csv"
        return self._post_file("/api/v1/datasets", data, filename, form).json()

    def list_datasets(self) -> list[Json]:
        return self._call("GET", "/api/v1/datasets")

    def get_dataset(self, dataset_id: int) -> Json:
        return self._call("GET", f"/api/v1/datasets/{dataset_id}")

    def update_dataset(
        self,
        dataset_id: int,
        *,
        target: str | None = None,
        roles: dict[str, str] | None = None,
        name: str | None = None,
        descriptions: dict[str, str] | None = None,
    ) -> Json:
        """Change the target or roles (validates again), the name, or column descriptions."""
        fields = {"target": target, "roles": roles, "name": name, "descriptions": descriptions}
        body = {k: v for k, v in fields.items() if v is not None}
        return self._call("PATCH", f"/api/v1/datasets/{dataset_id}", json=body)

    def dataset_map(self, dataset_id: int, column: str, sample: int = 1000) -> Json:
        """A 2-D t-SNE map of a text column's sample: ``{"points": [{"x", "y", "label",
        "text"}]}``."""
        return self._call(
            "GET",
            f"/api/v1/datasets/{dataset_id}/map",
            params={"column": column, "sample": sample},
            timeout=300,
        )

    def download_dataset(self, dataset_id: int, dest: str | Path) -> Path:
        dest = Path(dest)
        with self._http.stream("GET", f"/api/v1/datasets/{dataset_id}/download") as r:
            if r.status_code >= 400:
                r.read()
                raise error_from_response(r)
            with dest.open("wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
        return dest

    def delete_dataset(self, dataset_id: int) -> None:
        self._call("DELETE", f"/api/v1/datasets/{dataset_id}")

    # -- jobs --------------------------------------------------------------------------------
    def start_job(self, dataset_id: int, model_name: str, **config: Any) -> Json:
        """Queue training; ``config``: target, roles, metric, time_budget, trials, families,
        promote."""
        body = {"dataset_id": dataset_id, "model_name": model_name, **config}
        return self._call("POST", "/api/v1/jobs", json=body)

    def list_jobs(self, state: str | None = None, limit: int = 100) -> list[Json]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return self._call("GET", "/api/v1/jobs", params=params)

    def get_job(self, job_id: int) -> Json:
        return self._call("GET", f"/api/v1/jobs/{job_id}")

    def job_logs(self, job_id: int) -> list[str]:
        return self._call("GET", f"/api/v1/jobs/{job_id}/logs")["lines"]

    def cancel_job(self, job_id: int) -> Json:
        return self._call("POST", f"/api/v1/jobs/{job_id}/cancel")

    def wait_job(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        poll: float = 1.0,
        on_progress: Callable[[Json], None] | None = None,
    ) -> Json:
        """Poll until the job ends; returns its last state (check ``job["state"]``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_progress:
                on_progress(job)
            if job["state"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Job {job_id} is still {job['state']} after {timeout}s.")
            time.sleep(poll)

    # -- models ------------------------------------------------------------------------------
    def list_models(self) -> list[Json]:
        return self._call("GET", "/api/v1/models")

    def get_model(self, name: str) -> Json:
        return self._call("GET", f"/api/v1/models/{name}")

    def get_model_version(self, name: str, version: int) -> Json:
        return self._call("GET", f"/api/v1/models/{name}/versions/{version}")

    def plot(self, name: str, version: int, plot: str) -> bytes:
        """A PNG: confusion_matrix, per_class_f1, optimization_history, param_importances,
        reliability, training_curve (a model with a hybrid network only)."""
        return self._request(
            "GET", f"/api/v1/models/{name}/versions/{version}/plots/{plot}"
        ).content

    def set_alias(self, name: str, version: int, alias: str = "champion") -> Json:
        return self._call(
            "PUT", f"/api/v1/models/{name}/aliases/{alias}", json={"version": version}
        )

    def load_model(self, name: str, version: int | None = None, alias: str | None = None) -> Json:
        params = {k: v for k, v in {"version": version, "alias": alias}.items() if v is not None}
        return self._call("POST", f"/api/v1/models/{name}/load", params=params)

    def unload_model(self, name: str, version: int | None = None) -> Json:
        params = {"version": version} if version is not None else {}
        return self._call("POST", f"/api/v1/models/{name}/unload", params=params)

    def loaded_models(self) -> list[Json]:
        return self._call("GET", "/api/v1/models/loaded")

    def delete_model(self, ref: str) -> Json:
        """``name/version`` deletes one version, ``name`` the whole model."""
        if "/" in ref:
            name, version = ref.rsplit("/", 1)
            return self._call("DELETE", f"/api/v1/models/{name}/versions/{version}")
        return self._call("DELETE", f"/api/v1/models/{ref}")

    def delete_all_models(self) -> Json:
        return self._call("DELETE", "/api/v1/models")

    # -- predictions -------------------------------------------------------------------------
    def predict(
        self,
        model: str,
        records: Json | list[Json],
        *,
        explain: bool = False,
        top: int = 5,
    ) -> Json:
        """``{"model", "version", "predictions": [{"label", "probabilities", ...}]}``."""
        body = {"model": model, "records": records, "explain": explain, "top": top}
        return self._call("POST", "/api/v1/predict", json=body)

    def prediction_log(
        self,
        name: str,
        limit: int = 100,
        before_id: int | None = None,
        version: int | None = None,
    ) -> Json:
        """One page of a model's logged predictions, newest first: ``{"data", "count",
        "next_before_id"}``."""
        params: dict[str, Any] = {"limit": limit}
        if before_id is not None:
            params["before_id"] = before_id
        if version is not None:
            params["version"] = version
        return self._call("GET", f"/api/v1/monitor/{name}/predictions", params=params)

    def feedback(self, name: str, items: list[dict[str, Any]]) -> Json:
        """True labels of logged predictions: ``[{"request_id", "position", "label"}]``."""
        return self._call("POST", f"/api/v1/monitor/{name}/feedback", json={"items": items})

    def feedback_file(self, name: str, path: str | Path) -> Json:
        """True labels from a table with request_id, position and label columns."""
        response = self._post_file(f"/api/v1/monitor/{name}/feedback/file", path, None, {})
        result: Json = response.json()
        return result

    def live_quality(
        self, name: str, days: float | None = None, version: int | None = None
    ) -> Json:
        """Accuracy, macro-F1 and per-class recall of the predictions that have feedback."""
        params = {k: v for k, v in {"days": days, "version": version}.items() if v is not None}
        return self._call("GET", f"/api/v1/monitor/{name}/quality", params=params)

    def drift(
        self,
        name: str,
        data: str | Path | bytes | None = None,
        *,
        version: int | None = None,
        days: float | None = None,
        limit: int | None = None,
        filename: str = "data.csv",
    ) -> Json:
        """A stored drift report of the model's logged predictions (the newest ``limit`` of
        the last ``days`` days), or of a working file ``data``."""
        params = {"version": version, "days": days, "limit": limit}
        params = {k: v for k, v in params.items() if v is not None}
        base = f"/api/v1/monitor/{name}/drift"
        if data is None:
            return self._call("POST", base, params=params)
        path = f"{base}/file" + (f"?version={version}" if version else "")
        return self._post_file(path, data, filename, {}).json()

    def drift_reports(self, name: str, limit: int = 100) -> list[Json]:
        """The model's stored drift reports, newest first (summaries)."""
        return self._call("GET", f"/api/v1/monitor/{name}/drift", params={"limit": limit})

    def drift_report(self, name: str, report_id: int) -> Json:
        return self._call("GET", f"/api/v1/monitor/{name}/drift/{report_id}")

    def drift_html(self, name: str, report_id: int) -> str:
        """One stored report as a self-contained HTML page."""
        return self._request("GET", f"/api/v1/monitor/{name}/drift/{report_id}/html").text

    def retrain(
        self,
        name: str,
        data: str | Path | bytes | None = None,
        *,
        reason: str = "",
        filename: str = "data.csv",
    ) -> Json:
        """Queue a retrain job on new labelled rows (a file with the target column), or on
        the log's feedback without ``data``; the job (its result: the journal entry)."""
        path = f"/api/v1/monitor/{name}/retrain"
        if data is None:
            return self._call("POST", path, data={"reason": reason})
        return self._post_file(path, data, filename, {"reason": reason}).json()

    def journal(self, name: str, limit: int = 50) -> list[Json]:
        """The model's retrains, newest first."""
        return self._call("GET", f"/api/v1/monitor/{name}/journal", params={"limit": limit})

    def policy(self, name: str) -> Json:
        return self._call("GET", f"/api/v1/monitor/{name}/policy")

    def set_policy(self, name: str, **policy: Any) -> Json:
        """Set the retraining policy: drift, quality_below, new_labels, every_days, ..."""
        return self._call("PUT", f"/api/v1/monitor/{name}/policy", json=policy)

    def delete_policy(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/monitor/{name}/policy")

    def compare_file(
        self, model: str, data: str | Path | bytes, *, filename: str = "data.csv"
    ) -> Json:
        """A file's text lengths, predicted classes and vocabulary against the training data."""
        return self._post_file("/api/v1/predict/compare", data, filename, {"model": model}).json()

    def predict_file(
        self, model: str, data: str | Path | bytes, *, output: str = "csv", filename: str = ""
    ) -> bytes:
        """The rows of a file (a path, or its bytes with ``filename``) with ``prediction`` and
        ``proba_<class>`` columns, as CSV or Parquet bytes."""
        form = {"model": model, "output": output}
        return self._post_file("/api/v1/predict/file", data, filename, form).content

    # -- retrieval ---------------------------------------------------------------------------
    def upload_qa(
        self,
        data: str | Path | bytes,
        *,
        name: str | None = None,
        context: str = "context",
        question: str = "question",
        answer: str | None = "answer",
        filename: str | None = None,
    ) -> Json:
        """Upload a QA dataset: SQuAD-style JSON, or a table with the named columns."""
        form = {"context": context, "question": question, "answer": answer or ""}
        if name:
            form["name"] = name
        return self._post_file(f"{RETRIEVAL}/datasets", data, filename, form).json()

    def list_qa_datasets(self) -> list[Json]:
        return self._call("GET", f"{RETRIEVAL}/datasets")

    def get_qa_dataset(self, dataset_id: int) -> Json:
        return self._call("GET", f"{RETRIEVAL}/datasets/{dataset_id}")

    def qa_map(self, dataset_id: int, sample: int = 1000) -> Json:
        """Start the t-SNE map job; its result holds the points."""
        return self._call("POST", f"{RETRIEVAL}/datasets/{dataset_id}/map", json={"sample": sample})

    def build_retrieval(
        self, name: str, dataset_id: int, *, replace: bool = False, **params: Any
    ) -> Json:
        """Start building a retrieval model (a job); ``params`` as in ``RetrievalParams``."""
        body = {"name": name, "dataset_id": dataset_id, "params": params, "replace": replace}
        return self._call("POST", f"{RETRIEVAL}/models", json=body)

    def list_retrieval_models(self) -> list[Json]:
        return self._call("GET", f"{RETRIEVAL}/models")

    def get_retrieval_model(self, name: str) -> Json:
        return self._call("GET", f"{RETRIEVAL}/models/{name}")

    def load_retrieval(self, name: str) -> Json:
        return self._call("POST", f"{RETRIEVAL}/models/{name}/load")

    def unload_retrieval(self, name: str) -> Json:
        return self._call("POST", f"{RETRIEVAL}/models/{name}/unload")

    def remove_retrieval(self, name: str) -> None:
        self._call("DELETE", f"{RETRIEVAL}/models/{name}")

    def remove_all_retrieval(self) -> Json:
        return self._call("DELETE", f"{RETRIEVAL}/models")

    def ask(self, name: str, question: str, k: int = 5) -> Json:
        """The ``k`` passages that best answer ``question``, with scores and ids."""
        body = {"question": question, "k": k}
        return self._call("POST", f"{RETRIEVAL}/models/{name}/search", json=body)

    def retrieval_benchmark(self, name: str, dataset_id: int, n: int = 100, k: int = 5) -> Json:
        """Latency of ``n`` random questions of the dataset, one at a time."""
        body = {"dataset_id": dataset_id, "n": n, "k": k}
        return self._call("POST", f"{RETRIEVAL}/models/{name}/benchmark", json=body)

    def retrieval_evaluate(self, name: str, dataset_id: int) -> Json:
        """Start the quality test (a job): top-1, top-5, MRR@10 in its result."""
        body = {"dataset_id": dataset_id}
        return self._call("POST", f"{RETRIEVAL}/models/{name}/evaluate", json=body)
