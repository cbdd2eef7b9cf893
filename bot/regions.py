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
        """The REST host for this region."""
        return _HOSTS[self]

    @property
    def base_url(self) -> str:
        """`https://<host>`: the base URL the client prefixes to `/v4/...`."""
        return f"https://{self.host}"


# Tencent also documents a backup host per region (`*.my-imcloud.com`); roombot does not fail
# over to it (a TENCENT_API_URL override can point there by hand), so it is not listed here.
_HOSTS: dict[Region, str] = {
    Region.CHINA: "console.tim.qq.com",
    Region.SINGAPORE: "adminapisgp.im.qcloud.com",
    Region.KOREA: "adminapikr.im.qcloud.com",
    Region.GERMANY: "adminapiger.im.qcloud.com",
    Region.INDIA: "adminapiind.im.qcloud.com",
    Region.USA: "adminapiusa.im.qcloud.com",
    Region.INDONESIA: "adminapiidn.im.qcloud.com",
}
