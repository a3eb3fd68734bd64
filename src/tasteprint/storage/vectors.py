"""Vector store: Chroma collections for item and profile embeddings. The only module importing chromadb.

Local persistent Chroma in the store directory by default, or a Chroma server (`--chroma-url`). Our
embeddings are always passed explicitly: Chroma's default embedding function downloads a model.
Writes to a local store take a file lock, because two processes writing one local Chroma can hang.
A local folder that cannot be read is derived data: it is logged in one line, removed and rebuilt.
"""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from filelock import FileLock

from tasteprint.errors import ConfigError
from tasteprint.progress import LoggedProgress

ITEMS = "tasteprint_items"
PROFILES = "tasteprint_profiles"
UPSERT_BATCH = 2000
HNSW_HEADER = struct.Struct("<I4Q")  # format version, level-0 offset, capacity, element count, bytes per element

log = logging.getLogger("tasteprint")


def hnsw_damage(folder: Path) -> str | None:
    """Why a local Chroma folder's HNSW index files are damaged, or None. A truncated index file makes
    Chroma's native reader crash the process (a segmentation fault no handler can catch), so the sizes
    its header implies are checked before opening: data_level0.bin holds at least count x
    bytes-per-element, length.bin a 4-byte vector length per element, and link_lists.bin one
    size-prefixed list per element. An index in a header format other than version 1 is left to Chroma."""
    for header in folder.glob("*/header.bin"):
        segment, raw = header.parent, header.read_bytes()
        if len(raw) < HNSW_HEADER.size:
            return f"{header} is truncated"
        version, _, _, count, per_element = HNSW_HEADER.unpack_from(raw)
        if version != 1:
            continue
        try:
            level0 = (segment / "data_level0.bin").stat().st_size
            lengths = (segment / "length.bin").stat().st_size
            links = (segment / "link_lists.bin").read_bytes()
        except OSError as exc:
            return f"{segment}: {exc.strerror}: {Path(exc.filename).name}"
        if level0 < count * per_element or lengths < 4 * count:
            return f"{segment} holds fewer elements than its header says"
        position = 0
        for _ in range(count):
            if position + 4 > len(links):
                return f"{segment}/link_lists.bin is truncated"
            position += 4 + int.from_bytes(links[position : position + 4], "little")
        if position > len(links):
            return f"{segment}/link_lists.bin is truncated"
    return None


class VectorStore:
    def __init__(self, store_dir: Path, chroma_url: str | None = None):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        settings = ChromaSettings(anonymized_telemetry=False)
        self.rebuilt = False  # whether an unreadable local folder was replaced by an empty one
        if chroma_url:
            url = urlparse(chroma_url)
            if not url.hostname:
                raise ConfigError(f"bad --chroma-url {chroma_url!r}", hint="e.g. http://127.0.0.1:8000")
            self.client = chromadb.HttpClient(
                host=url.hostname, port=url.port or 8000, ssl=url.scheme == "https", settings=settings
            )
            self.lock = None
        else:
            path = Path(store_dir) / "chroma"
            self.lock = FileLock(str(Path(store_dir) / "chroma.lock"))
            # Opening a fresh local store creates its tables: two processes doing that at once crash
            # inside Chroma ("table collections already exists"), so the first open is serialised too.
            with self.lock:
                damage = hnsw_damage(path)
                if damage is None:
                    try:
                        self.client = chromadb.PersistentClient(path=str(path), settings=settings)
                        self._open_collections()
                        return
                    except Exception as exc:  # noqa: BLE001 - whatever Chroma raises, the folder is unreadable
                        damage = f"{type(exc).__name__}: {str(exc)[:120]}"
                log.warning("the item vectors in %s cannot be read (%s); rebuilding them from the data", path, damage)
                shutil.rmtree(path, ignore_errors=True)
                self.rebuilt = True
                chromadb.api.client.SharedSystemClient.clear_system_cache()  # forget the damaged folder's client
                self.client = chromadb.PersistentClient(path=str(path), settings=settings)
                self._open_collections()
            return
        self._open_collections()

    def _open_collections(self) -> None:
        space = {"hnsw:space": "cosine"}
        self.items = self.client.get_or_create_collection(ITEMS, embedding_function=None, metadata=space)
        self.profiles = self.client.get_or_create_collection(PROFILES, embedding_function=None, metadata=space)

    def _write(self, action, *args, **kwargs):
        if self.lock is None:
            return action(*args, **kwargs)
        with self.lock:
            return action(*args, **kwargs)

    def item_ids(self) -> set[str]:
        return set(self.items.get(include=[])["ids"])

    def upsert_items(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            self._write(
                self.items.upsert, ids=ids[start:end], embeddings=vectors[start:end], metadatas=metadatas[start:end]
            )

    def item_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        found = self.items.get(ids=list(dict.fromkeys(ids)), include=["embeddings"])  # Chroma rejects repeats
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(found["ids"], found["embeddings"])}

    def nearest_items(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest items to a vector, as (item id, cosine similarity), best first."""
        k = min(k, self.items.count())
        if k == 0:
            return []
        result = self.items.query(query_embeddings=[vector], n_results=k, include=["distances"])
        return [(i, 1.0 - d) for i, d in zip(result["ids"][0], result["distances"][0])]

    def upsert_profile(self, user_id: str, vector: np.ndarray, metadata: dict) -> None:
        self._write(self.profiles.upsert, ids=[user_id], embeddings=[vector], metadatas=[metadata])

    def profile_vector(self, user_id: str) -> np.ndarray | None:
        found = self.profiles.get(ids=[user_id], include=["embeddings"])
        return np.asarray(found["embeddings"][0], dtype=np.float32) if found["ids"] else None

    def delete_profile(self, user_id: str) -> None:
        self._write(self.profiles.delete, ids=[user_id])


def index_items(vectors: VectorStore, items: dict, embed, progress: bool = True) -> int:
    """Embed and upsert every catalogue item not yet in the vector store. Returns how many were added."""
    from .embeddings import item_text

    missing = sorted(set(items) - vectors.item_ids())
    batch = 512
    starts = range(0, len(missing), batch)
    with LoggedProgress(disable=not progress or len(missing) < batch) as bar:
        for start in bar.track(starts, description="indexing items"):
            ids = missing[start : start + batch]
            texts = [item_text(items[i]) for i in ids]
            metadatas = [{"title": items[i].title[:200], "platform": items[i].platform} for i in ids]
            vectors.upsert_items(ids, embed(texts), metadatas)
    return len(missing)
