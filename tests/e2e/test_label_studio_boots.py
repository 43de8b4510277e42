"""The ``label_studio`` fixture boots a real Label Studio 1.23.2 that accepts our tokens and serves test media."""

import shutil

import av
import requests

from tests.services import LS_VERSION, ls_sample_video


def test_label_studio_projects_api_accepts_legacy_token(label_studio):
    resp = requests.get(f"{label_studio.url}/api/projects/", headers=label_studio.headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert "results" in resp.json()
    assert requests.get(f"{label_studio.url}/api/projects/", timeout=30).status_code == 401


def test_label_studio_reports_pinned_version(label_studio):
    resp = requests.get(f"{label_studio.url}/api/version", headers=label_studio.headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["release"].startswith(LS_VERSION)


def test_label_studio_personal_access_token_exchanges_for_jwt(label_studio):
    pat = label_studio.personal_access_token()
    access = requests.post(f"{label_studio.url}/api/token/refresh/", json={"refresh": pat}, timeout=30)
    assert access.status_code == 200, access.text
    bearer = {"Authorization": f"Bearer {access.json()['access']}"}
    assert requests.get(f"{label_studio.url}/api/projects/", headers=bearer, timeout=30).status_code == 200


def test_ls_sample_video_is_a_decodable_mp4():
    video = ls_sample_video()
    assert video.suffix == ".mp4" and video.stat().st_size > 1_000_000
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (1280, 720)
        assert stream.frames > 100


def test_label_studio_serves_local_files_from_files_root(label_studio):
    """A task can point at ``/data/local-files/?d=`` once the project has a Local Files storage over that dir."""
    media_dir = label_studio.files_root / "boots"
    media_dir.mkdir(exist_ok=True)
    video = shutil.copy(ls_sample_video(), media_dir / "clip.mp4")
    config = '<View><Video name="video" value="$video"/><VideoRectangle name="box" toName="video"/></View>'
    project = label_studio.request("POST", "/api/projects/", body={"title": "boots", "label_config": config})
    label_studio.add_local_storage(project["id"], media_dir)
    url = label_studio.local_files_url(video)
    resp = requests.get(label_studio.url + url, headers=label_studio.headers, timeout=30)
    assert resp.status_code == 200
    assert len(resp.content) == ls_sample_video().stat().st_size
    assert requests.get(label_studio.url + url, timeout=30).status_code == 401
