"""The Room Engine REST hosts, one per data-centre region (the only copy of this table)."""

from __future__ import annotations

from enum import StrEnum


class Region(StrEnum):
    """A region in which an SDKAppID lives; the value is the `TENCENT_REGION` spelling."""

    SINGAPORE = "singapore"
    CHINA = "china"
    KOREA = "korea"
    GERMANY = "germany"
    INDIA = "india"
    USA = "usa"
    INDONESIA = "indonesia"

    @property
    def host(self) -> str:
        """The primary REST host for this region."""
        return _HOSTS[self][0]

    @property
    def backup_host(self) -> str:
        """The documented backup host for this region."""
        return _HOSTS[self][1]

    @property
    def base_url(self) -> str:
        """`https://<host>`: the base URL the client prefixes to `/v4/...`."""
        return f"https://{self.host}"


_HOSTS: dict[Region, tuple[str, str]] = {
    Region.CHINA: ("console.tim.qq.com", "adminapi.my-imcloud.com"),
    Region.SINGAPORE: ("adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
    Region.KOREA: ("adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
    Region.GERMANY: ("adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
    Region.INDIA: ("adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com"),
    Region.USA: ("adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"),
    Region.INDONESIA: ("adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
}
