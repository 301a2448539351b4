"""The metadata store on SQLite and on PostgreSQL: migrations, accounts, tokens, job claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from taxonomist.errors import AuthenticationError, ConflictError, InvalidParameterError
from taxonomist.store import ApiToken, AuditEntry, Database, Dataset, Job, JobState, User
from taxonomist.store.accounts import (
    authenticate,
    create_user,
    ensure_admin,
    issue_token,
    user_for_token,
)


@pytest.fixture
def db(database_url: str) -> Database:
    d = Database(database_url)
    d.migrate()
    yield d
    d.dispose()


def test_migrations_are_idempotent_and_match_the_tables(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from taxonomist.store import Base

    db.migrate()  # a second run changes nothing
    assert db.revision() == "0007"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    d = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with d.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_first_admin_is_created_once(db: Database) -> None:
    with db.session() as s:
        generated = ensure_admin(s, None)
    assert generated and len(generated) >= 12
    with db.session() as s:
        assert ensure_admin(s, None) is None  # not again
        admin = authenticate(s, "admin", generated)
        assert admin.is_admin
        assert s.scalar(select(AuditEntry.action)) == "create_first_admin"


def test_passwords_are_hashed_with_argon2_and_checked(db: Database) -> None:
    with db.session() as s:
        user = create_user(s, "alice", "correct horse")
        assert user.password_hash.startswith("$argon2")
        assert "correct horse" not in user.password_hash
    with db.session() as s:
        assert authenticate(s, "alice", "correct horse").username == "alice"
        with pytest.raises(AuthenticationError, match="Wrong username or password"):
            authenticate(s, "alice", "wrong horse")
        with pytest.raises(AuthenticationError, match="Wrong username or password"):
            authenticate(s, "nobody", "correct horse")
    with db.session() as s:
        s.execute(update(User).where(User.username == "alice").values(disabled=True))
    with db.session() as s, pytest.raises(AuthenticationError, match="disabled"):
        authenticate(s, "alice", "correct horse")


def test_bad_accounts_are_refused(db: Database) -> None:
    with db.session() as s:
        create_user(s, "alice", "long enough")
    with db.session() as s, pytest.raises(ConflictError, match="taken"):
        create_user(s, "alice", "long enough")
    with db.session() as s:
        with pytest.raises(InvalidParameterError, match="too short"):
            create_user(s, "bob", "short")
        with pytest.raises(InvalidParameterError, match="Invalid username"):
            create_user(s, "-bob", "long enough")
        with pytest.raises(InvalidParameterError, match="Unknown role"):
            create_user(s, "bob", "long enough", role="owner")


def test_tokens_are_stored_hashed_and_expire_and_revoke(db: Database) -> None:
    with db.session() as s:
        user = create_user(s, "alice", "long enough")
        plain, row = issue_token(s, user, kind="personal", name="nb", ttl=timedelta(days=1))
        expired, _ = issue_token(s, user, kind="session", name="x", ttl=timedelta(seconds=-1))
    assert plain.startswith("tx_") and len(plain) > 40
    with db.session() as s:
        stored = s.scalars(select(ApiToken.token_hash)).all()
        assert plain not in stored and all(len(h) == 64 for h in stored)
        assert user_for_token(s, plain)[0].username == "alice"
        with pytest.raises(AuthenticationError, match="expired"):
            user_for_token(s, expired)
        with pytest.raises(AuthenticationError, match="Unknown token"):
            user_for_token(s, "tx_not-a-token")
        s.get_one(ApiToken, row.id).revoked_at = datetime.now(UTC)
    with db.session() as s, pytest.raises(AuthenticationError, match="revoked"):
        user_for_token(s, plain)


def test_a_failed_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(ConflictError), db.session() as s:
        create_user(s, "carol", "long enough")
        create_user(s, "carol", "long enough")
    with db.session() as s:
        assert s.scalar(select(User).where(User.username == "carol")) is None


def test_a_job_is_claimed_once_and_deleting_its_dataset_keeps_it(db: Database) -> None:
    from taxonomist.engine.jobs import run_job

    with db.session() as s:
        user = create_user(s, "alice", "long enough")
        ds = Dataset(
            owner_id=user.id,
            name="d",
            filename="d.csv",
            path="/nonexistent.csv",
            size_bytes=1,
            sha256="0" * 64,
            n_rows=1,
            n_columns=1,
            roles={},
            report={},
            profile={},
        )
        s.add(ds)
        s.flush()
        job = Job(owner_id=user.id, dataset_id=ds.id, config={}, progress={}, logs=[])
        s.add(job)
        s.flush()
        job_id, ds_id = job.id, ds.id
        s.execute(update(Job).where(Job.id == job_id).values(state=JobState.RUNNING.value))
    # A job that is already running is not claimed again: its task run a second time means
    # Dask retried it, its first worker lost (tests/engine/test_leases.py).
    assert run_job(job_id, {"database_url": db.url}) == {"skipped": True}
    with db.session() as s:
        s.delete(s.get_one(Dataset, ds_id))
    with db.session() as s:
        kept = s.get_one(Job, job_id)
        assert kept.dataset_id is None and kept.state == "failed"


def test_upgrading_keeps_the_rows_already_stored(database_url: str) -> None:
    from sqlalchemy import text

    db = Database(database_url)
    db.migrate("0001")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, disabled, created_at) "
                "VALUES ('old', 'x', 'member', false, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO datasets (owner_id, name, filename, path, size_bytes, sha256, "
                "n_rows, n_columns, roles, report, profile, created_at) VALUES (1, 'd', "
                "'d.csv', '/d.csv', 1, 'x', 1, 1, '{}', '{}', '{}', CURRENT_TIMESTAMP)"
            )
        )
    db.migrate()
    assert db.revision() == "0007"
    with db.session() as s:
        ds = s.get_one(Dataset, 1)
        assert ds.name == "d" and ds.descriptions is None and ds.kind == "table"
        ds.descriptions = {"text": "the product title"}
    with db.session() as s:
        assert s.get_one(Dataset, 1).descriptions == {"text": "the product title"}
    db.dispose()


def test_a_deleted_datasets_id_is_never_given_to_another(db: Database) -> None:
    def add(s: Session, owner: int) -> int:
        ds = Dataset(
            owner_id=owner,
            name="d",
            filename="d.csv",
            path="/d.csv",
            size_bytes=1,
            sha256="x",
            n_rows=1,
            n_columns=1,
            roles={},
            report={},
            profile={},
        )
        s.add(ds)
        s.flush()
        return ds.id

    with db.session() as s:
        owner = create_user(s, "owner", "password-1").id
        first = add(s, owner)
    with db.session() as s:
        s.delete(s.get_one(Dataset, first))
    with db.session() as s:
        assert add(s, owner) == first + 1


def test_the_upgrade_to_unreused_ids_keeps_the_jobs_links(database_url: str) -> None:
    from sqlalchemy import text

    db = Database(database_url)
    db.migrate("0005")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, disabled, created_at) "
                "VALUES ('old', 'x', 'member', false, CURRENT_TIMESTAMP)"
            )
        )
        for _ in range(2):
            conn.execute(
                text(
                    "INSERT INTO datasets (owner_id, name, filename, path, size_bytes, sha256, "
                    "n_rows, n_columns, roles, report, profile, kind, created_at) VALUES (1, "
                    "'d', 'd.csv', '/d.csv', 1, 'x', 1, 1, '{}', '{}', '{}', 'table', "
                    "CURRENT_TIMESTAMP)"
                )
            )
        conn.execute(
            text(
                "INSERT INTO jobs (owner_id, dataset_id, state, kind, config, progress, logs, "
                "cancel_requested, created_at) VALUES (1, 2, 'succeeded', 'train', '{}', '{}', "
                "'[]', false, CURRENT_TIMESTAMP)"
            )
        )
    db.migrate()
    assert db.revision() == "0007"
    with db.session() as s:
        assert s.get_one(Job, 1).dataset_id == 2
        s.delete(s.get_one(Dataset, 2))
    with db.session() as s:
        assert s.get_one(Job, 1).dataset_id is None  # the foreign key still acts
        ds = s.get_one(Dataset, 1)
        s.add(
            Dataset(
                **{c: getattr(ds, c) for c in ("owner_id", "name", "filename", "path")},
                size_bytes=1,
                sha256="x",
                n_rows=1,
                n_columns=1,
                roles={},
                report={},
                profile={},
            )
        )
    with db.session() as s:
        assert max(s.scalars(select(Dataset.id))) == 3  # not 2 again
    db.dispose()
