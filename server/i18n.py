"""The one translation catalogue: zh-CN by default, English on request (?lang=en or Accept-Language)."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("zh-CN", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "app.name": {"zh-CN": "揽收", "en": "Lanshou"},
    "login.title": {"zh-CN": "登录", "en": "Sign in"},
    "login.username": {"zh-CN": "用户名", "en": "Username"},
    "login.password": {"zh-CN": "密码", "en": "Password"},
    "login.submit": {"zh-CN": "登录", "en": "Sign in"},
    "login.failed": {"zh-CN": "用户名或密码错误", "en": "Wrong username or password"},
    "login.missing": {"zh-CN": "请输入用户名和密码", "en": "Enter your username and password"},
    "login.signed_in_as": {"zh-CN": "已登录：", "en": "Signed in as "},
    "login.throttled": {
        "zh-CN": "登录失败次数过多，请 {minutes} 分钟后再试",
        "en": "Too many failed sign-ins. Try again in {minutes} min.",
    },
    "login.invalid": {"zh-CN": "用户名或密码格式不正确", "en": "That username or password cannot be right"},
    "logout": {"zh-CN": "退出", "en": "Sign out"},
    "forbidden.title": {"zh-CN": "无权访问", "en": "Not allowed"},
    "forbidden.hint": {
        "zh-CN": "如需使用，请用有权限的账号登录。",
        "en": "To use it, sign in with an account that may.",
    },
    "forbidden.switch": {"zh-CN": "换个账号登录", "en": "Sign in as someone else"},
    # -- the dispatcher's console (server/console) --
    "console.title": {"zh-CN": "调度台", "en": "Dispatch console"},
    "console.live": {"zh-CN": "实时", "en": "Live"},
    "console.offline": {"zh-CN": "连接中…", "en": "Connecting…"},
    "console.section.queue": {"zh-CN": "待处理", "en": "Pending queue"},
    "console.section.queue.hint": {
        "zh-CN": "未匹配片区或已升级至调度",
        "en": "no zone matched, or escalated to the dispatcher",
    },
    "console.section.offered": {"zh-CN": "待接单", "en": "Offered"},
    "console.section.offered.hint": {"zh-CN": "已推送给揽投员", "en": "waiting for a courier"},
    "console.section.held": {"zh-CN": "揽收中", "en": "In hand"},
    "console.section.held.hint": {"zh-CN": "已接单 / 已联系", "en": "accepted / contacted"},
    "console.section.closed": {"zh-CN": "最近完结", "en": "Recently closed"},
    "console.section.closed.hint": {
        "zh-CN": "已揽收 / 揽收失败 / 已取消",
        "en": "collected / failed / cancelled",
    },
    "console.more": {"zh-CN": "显示 {shown} / 共 {total}", "en": "showing {shown} of {total}"},
    "console.empty": {"zh-CN": "暂无", "en": "Nothing here"},
    "console.col.tracking": {"zh-CN": "单号", "en": "Tracking code"},
    "console.col.zone": {"zh-CN": "片区", "en": "Zone"},
    "console.col.address": {"zh-CN": "区 · 街道", "en": "District · street"},
    "console.col.status": {"zh-CN": "状态", "en": "Status"},
    "console.col.courier": {"zh-CN": "揽投员", "en": "Courier"},
    "console.col.due": {"zh-CN": "揽收时限", "en": "Due"},
    "console.col.chase": {"zh-CN": "催件", "en": "Chased"},
    "console.status.pending": {"zh-CN": "待分配", "en": "Pending"},
    "console.status.offered": {"zh-CN": "待接单", "en": "Offered"},
    "console.status.accepted": {"zh-CN": "已接单", "en": "Accepted"},
    "console.status.contacted": {"zh-CN": "已联系", "en": "Contacted"},
    "console.status.collected": {"zh-CN": "已揽收", "en": "Collected"},
    "console.status.failed": {"zh-CN": "揽收失败", "en": "Failed"},
    "console.status.cancelled": {"zh-CN": "已取消", "en": "Cancelled"},
    "console.sla.warning": {"zh-CN": "临近超时", "en": "Due soon"},
    "console.sla.breached": {"zh-CN": "已超时", "en": "Overdue"},
    "console.escalated": {"zh-CN": "已升级至调度", "en": "Escalated"},
    "console.no_zone": {"zh-CN": "未匹配片区", "en": "No zone"},
    "console.due.left": {"zh-CN": "剩 {d}", "en": "{d} left"},
    "console.due.over": {"zh-CN": "超时 {d}", "en": "{d} late"},
    "console.dur.min": {"zh-CN": "{n}分钟", "en": "{n} min"},
    "console.dur.hour": {"zh-CN": "{h}小时{m}分", "en": "{h}h {m}m"},
    "console.dur.day": {"zh-CN": "{n}天", "en": "{n} d"},
    "console.ago": {"zh-CN": "{d}前", "en": "{d} ago"},
    "console.just_now": {"zh-CN": "刚刚", "en": "just now"},
    "console.map": {"zh-CN": "片区地图", "en": "Zone map"},
    "console.map.hint": {"zh-CN": "点击地图上的片区筛选", "en": "Click a zone on the map to filter"},
    "console.filter.zone": {"zh-CN": "片区：{zone}", "en": "Zone: {zone}"},
    "console.filter.clear": {"zh-CN": "清除筛选", "en": "Clear filter"},
    "console.couriers": {"zh-CN": "揽投员", "en": "Couriers"},
    "console.couriers.summary": {"zh-CN": "在岗 {on} / 共 {total}", "en": "{on} on duty of {total}"},
    "console.courier.name": {"zh-CN": "姓名", "en": "Name"},
    "console.courier.duty": {"zh-CN": "状态", "en": "Duty"},
    "console.courier.on_duty": {"zh-CN": "在岗", "en": "On duty"},
    "console.courier.off_duty": {"zh-CN": "离岗", "en": "Off duty"},
    "console.courier.open": {"zh-CN": "在办/上限", "en": "Load"},
    "console.courier.last_seen": {"zh-CN": "最近在线", "en": "Seen"},
    "console.courier.last_accept": {"zh-CN": "上次接单", "en": "Accepted"},
    "console.dispatch.selected": {"zh-CN": "已选 {n} 单", "en": "{n} selected"},
    "console.form.unreachable": {
        "zh-CN": "连不上服务器，未做任何修改，请稍后重试",
        "en": "The server cannot be reached; nothing was changed. Try again shortly.",
    },
    "console.form.failed": {
        "zh-CN": "服务器出错（{status}），未做任何修改，请稍后重试",
        "en": "The server failed ({status}); nothing was changed. Try again shortly.",
    },
    "console.dispatch.courier": {"zh-CN": "揽投员", "en": "Courier"},
    "console.dispatch.choose": {"zh-CN": "选择揽投员…", "en": "Choose a courier…"},
    "console.dispatch.reason": {"zh-CN": "原因（必填）", "en": "Reason (required)"},
    "console.dispatch.outside": {"zh-CN": "允许跨片区", "en": "Allow outside the zone"},
    "console.dispatch.assign": {"zh-CN": "派单 / 改派", "en": "Assign / reassign"},
    "console.dispatch.unassign": {"zh-CN": "撤回", "en": "Unassign"},
    "console.dispatch.done_assign": {"zh-CN": "已派给 {courier}：{n} 单", "en": "Assigned {n} to {courier}"},
    "console.dispatch.done_unassign": {
        "zh-CN": "已撤回 {n} 单，重新派发",
        "en": "Took back {n}; dispatching afresh",
    },
    "console.dispatch.no_selection": {"zh-CN": "请先勾选运单", "en": "Select at least one pickup"},
    "console.dispatch.no_courier": {"zh-CN": "请选择揽投员", "en": "Choose a courier"},
    "console.dispatch.no_reason": {"zh-CN": "请填写原因", "en": "Give a reason"},
    "console.error.not_found": {
        "zh-CN": "运单或揽投员不存在，未做任何修改",
        "en": "Not found; nothing was changed",
    },
    "console.error.validation_error": {
        "zh-CN": "输入有误，未做任何修改",
        "en": "Invalid input; nothing was changed",
    },
    "console.error.courier_off_duty": {"zh-CN": "该揽投员不在岗", "en": "This courier is off duty"},
    "console.error.courier_outside_zone": {
        "zh-CN": "该揽投员不负责此片区（勾选“允许跨片区”可强制派单）",
        "en": "The courier does not work this zone (tick “allow outside the zone” to insist)",
    },
    "console.error.illegal_transition": {
        "zh-CN": "所选运单中有的当前状态不能派单或撤回，未做任何修改",
        "en": "Some selected pickups cannot be changed in their current state; nothing was changed",
    },
    "console.error.over_capacity": {
        "zh-CN": "该揽投员在办运单已满，放不下这些运单",
        "en": "The courier has no room for these pickups",
    },
    "console.error.conflict": {
        "zh-CN": "运单刚刚有变化，请重试",
        "en": "The pickup changed meanwhile; try again",
    },
    "console.forbidden": {
        "zh-CN": "调度台仅限调度员和管理员使用",
        "en": "The console is for dispatchers and admins",
    },
    "console.zones.title": {"zh-CN": "导入片区（GeoJSON）", "en": "Import zones (GeoJSON)"},
    "console.zones.export": {"zh-CN": "导出全部片区（GeoJSON）", "en": "Export all zones (GeoJSON)"},
    "console.zones.file": {"zh-CN": "GeoJSON 文件", "en": "GeoJSON file"},
    "console.zones.text": {"zh-CN": "或粘贴 GeoJSON", "en": "or paste GeoJSON"},
    "console.zones.station": {"zh-CN": "默认网点", "en": "Default station"},
    "console.zones.datum": {"zh-CN": "坐标系", "en": "Datum"},
    "console.zones.submit": {"zh-CN": "导入", "en": "Import"},
    "console.zones.empty": {"zh-CN": "请选择文件或粘贴 GeoJSON", "en": "Choose a file or paste GeoJSON"},
    "console.zones.bad_json": {"zh-CN": "不是有效的 JSON：{detail}", "en": "Not valid JSON: {detail}"},
    "console.zones.bad_encoding": {
        "zh-CN": "无法识别文件编码：请另存为 UTF-8（或 GBK / GB18030）后重新上传",
        "en": "Unknown file encoding: save it as UTF-8 (or GBK / GB18030) and upload it again",
    },
    "console.zones.too_deep": {
        "zh-CN": "JSON 嵌套过深（最多 {n} 层），不像是片区文件",
        "en": "The JSON is nested too deeply (at most {n} levels); this does not look like a zone file",
    },
    "console.zones.too_large": {
        "zh-CN": "文件太大：最多 {mb} MB",
        "en": "The file is too large: at most {mb} MB",
    },
    "console.zones.refused": {
        "zh-CN": "GeoJSON 未通过校验（{n} 处问题），未做任何修改",
        "en": "The GeoJSON was refused ({n} problems); nothing was changed",
    },
    "console.zones.done": {
        "zh-CN": "导入成功：新建 {created} 个，更新 {updated} 个",
        "en": "Imported: {created} created, {updated} updated",
    },
    "console.zones.col.feature": {"zh-CN": "要素", "en": "Feature"},
    "console.zones.col.field": {"zh-CN": "字段", "en": "Field"},
    "console.zones.col.message": {"zh-CN": "问题", "en": "Problem"},
    "console.datum.wgs84": {"zh-CN": "WGS-84（GPS）", "en": "WGS-84 (GPS)"},
    "console.datum.gcj02": {"zh-CN": "GCJ-02（高德 / 腾讯）", "en": "GCJ-02 (AMap / Tencent)"},
    "console.datum.bd09": {"zh-CN": "BD-09（百度）", "en": "BD-09 (Baidu)"},
    "console.geo.not_collection": {
        "zh-CN": "应为 GeoJSON FeatureCollection",
        "en": "expected a GeoJSON FeatureCollection",
    },
    "console.geo.no_features": {
        "zh-CN": "缺少 features 数组",
        "en": "a FeatureCollection needs a 'features' array",
    },
    "console.geo.not_feature": {"zh-CN": "应为 GeoJSON Feature", "en": "expected a GeoJSON Feature"},
    "console.geo.properties": {"zh-CN": "properties 应为对象", "en": "properties must be an object"},
    "console.geo.code": {"zh-CN": "缺少片区编码（code）", "en": "code is required"},
    "console.geo.name": {"zh-CN": "缺少片区名称（name）", "en": "name is required"},
    "console.geo.priority": {
        "zh-CN": "priority 应为 -1000000 到 1000000 之间的整数",
        "en": "priority must be an integer from -1000000 to 1000000",
    },
    "console.geo.admin_areas": {
        "zh-CN": "admin_areas 应为非空字符串数组（区 / 街道名）",
        "en": "admin_areas must be an array of names",
    },
    "console.geo.station": {"zh-CN": "station 应为网点编码字符串", "en": "station must be a string code"},
    "console.geo.more_positions": {
        "zh-CN": "此环另有 {n} 个无效坐标点未列出",
        "en": "{n} more invalid positions in this ring are not listed",
    },
    "console.geo.duplicate": {
        "zh-CN": "片区编码 {code} 重复：已在要素 #{other} 使用",
        "en": "duplicate code {code}: already used by feature #{other}",
    },
    "console.geo.null_geometry": {
        "zh-CN": "没有多边形的片区须填写 admin_areas（区 / 街道名）",
        "en": "a zone without a polygon needs properties.admin_areas",
    },
    "console.geo.geometry": {
        "zh-CN": "geometry 应为 GeoJSON 几何对象或 null",
        "en": "geometry must be a geometry object or null",
    },
    "console.geo.geometry_type": {
        "zh-CN": "不支持的几何类型 {type}；片区须为 Polygon 或 MultiPolygon",
        "en": "unsupported geometry type {type}; use Polygon or MultiPolygon",
    },
    "console.geo.position": {
        "zh-CN": "坐标点应为 [经度, 纬度] 数字",
        "en": "a position must be [longitude, latitude] numbers",
    },
    "console.geo.longitude": {
        "zh-CN": "坐标点 {pos}：经度超出 [-180, 180]",
        "en": "position {pos}: longitude out of range",
    },
    "console.geo.latitude": {
        "zh-CN": "坐标点 {pos}：纬度超出 [-90, 90]",
        "en": "position {pos}: latitude out of range",
    },
    "console.geo.outside_china": {
        "zh-CN": "坐标点 {pos} 不在中国境内",
        "en": "position {pos} is outside China",
    },
    "console.geo.swapped": {
        "zh-CN": "；疑似把纬度写在了前面（GeoJSON 要求 [经度, 纬度]）",
        "en": "; it looks like [latitude, longitude]",
    },
    "console.geo.ring_short": {
        "zh-CN": "环至少需要 4 个点（首尾相同），实际 {n} 个",
        "en": "a linear ring needs at least 4 positions, got {n}",
    },
    "console.geo.ring_open": {
        "zh-CN": "多边形的环未闭合：首尾两点必须相同",
        "en": "linear ring is not closed",
    },
    "console.geo.invalid": {"zh-CN": "多边形无效：{why}", "en": "invalid polygon: {why}"},
    "console.geo.no_station": {
        "zh-CN": "未指定网点（properties.station 或默认网点）",
        "en": "no station given",
    },
    "console.geo.unknown_station": {"zh-CN": "网点 {code} 不存在", "en": "unknown station {code}"},
    "console.geo.dispatch_mode": {
        "zh-CN": "派单方式应为 grab（抢单）或 assign（派单）",
        "en": "grab or assign",
    },
    "console.geo.station_scope": {
        "zh-CN": "网点 {code} 不在您负责的范围内",
        "en": "station {code} is outside the stations you answer for",
    },
    "console.geo.zone_scope": {
        "zh-CN": "片区 {code} 属于您负责范围以外的网点",
        "en": "zone {code} belongs to a station outside yours",
    },
    "console.geo.control": {
        "zh-CN": "{what} 不能包含控制字符",
        "en": "{what} must not contain control characters",
    },
    "console.geo.too_long": {
        "zh-CN": "{what} 最多 {n} 个字符",
        "en": "{what} must be at most {n} characters",
    },
    "console.geo.blank": {"zh-CN": "{what} 不能为空", "en": "{what} must not be blank"},
    "console.geo.ttl": {
        "zh-CN": "应为 {low} 到 {high} 之间的整数秒",
        "en": "a whole number of seconds from {low} to {high}",
    },
    "console.geo.sla": {
        "zh-CN": "应为大于 0、不超过 {high} 的分钟数",
        "en": "a number of minutes above 0 and at most {high}",
    },
    # -- the courier app (server/courier_app) --
    "courier.title": {"zh-CN": "揽投员", "en": "Courier"},
    "courier.forbidden": {"zh-CN": "揽投员应用仅供揽投员使用。", "en": "The courier app is for couriers."},
    "courier.live": {"zh-CN": "在线", "en": "Online"},
    "courier.connecting": {"zh-CN": "连接中…", "en": "Connecting…"},
    "courier.on_duty": {"zh-CN": "在岗中 · 点此下班", "en": "On duty · tap to go off"},
    "courier.off_duty": {"zh-CN": "点此上岗接单", "en": "Tap to go on duty"},
    "courier.offers": {"zh-CN": "新订单", "en": "New offers"},
    "courier.held": {"zh-CN": "我的揽收", "en": "My pickups"},
    "courier.none": {
        "zh-CN": "暂无订单，上岗后新订单会响铃提醒",
        "en": "Nothing yet. On duty, new offers ring.",
    },
    "courier.parcels": {"zh-CN": "{n} 件", "en": "{n} parcel(s)"},
    "courier.slot": {"zh-CN": "时段", "en": "Time slot"},
    "courier.count": {"zh-CN": "件数", "en": "Parcels"},
    "courier.slot.any": {"zh-CN": "尽快", "en": "As soon as possible"},
    "courier.left": {"zh-CN": "剩 {s} 秒", "en": "{s} s left"},
    "courier.expired": {"zh-CN": "已过期", "en": "Expired"},
    "courier.accept": {"zh-CN": "接单", "en": "Accept"},
    "courier.decline": {"zh-CN": "不接", "en": "Decline"},
    "courier.call": {"zh-CN": "拨打 {phone}", "en": "Call {phone}"},
    "courier.contacted": {"zh-CN": "已联系客户", "en": "Customer contacted"},
    "courier.status.accepted": {"zh-CN": "已接单", "en": "Accepted"},
    "courier.status.contacted": {"zh-CN": "已联系", "en": "Contacted"},
    "courier.waybill": {"zh-CN": "运单号", "en": "Waybill number"},
    "courier.collect": {"zh-CN": "确认揽收", "en": "Collect"},
    "courier.fail": {"zh-CN": "无法揽收", "en": "Cannot collect"},
    "courier.fail.reason": {"zh-CN": "原因", "en": "Reason"},
    "courier.waybill.invalid": {
        "zh-CN": "运单号不正确（校验位不符），请重新扫描或输入",
        "en": "That waybill number is not right (check digit); scan or type it again",
    },
    "courier.waybill.taken": {
        "zh-CN": "该运单号已绑定其他订单",
        "en": "That waybill number is already on another pickup",
    },
    "courier.waybill.required": {"zh-CN": "请输入运单号", "en": "Enter the waybill number"},
    "courier.waybill.unknown": {
        "zh-CN": "不是可识别的运单号，请重新扫描或输入",
        "en": "That is not a waybill number we know; scan or type it again",
    },
    "courier.scan": {"zh-CN": "扫码", "en": "Scan"},
    "courier.scan.title": {"zh-CN": "扫描运单条码", "en": "Scan the waybill barcode"},
    "courier.scan.cancel": {"zh-CN": "取消", "en": "Cancel"},
    "courier.scan.starting": {"zh-CN": "正在打开相机…", "en": "Opening the camera…"},
    "courier.scan.aim": {"zh-CN": "将条码放入框内", "en": "Hold the barcode inside the frame"},
    "courier.scan.not_waybill": {
        "zh-CN": "这个码不是运单号，请对准运单条码",
        "en": "That code is not a waybill number; aim at the waybill's barcode",
    },
    "courier.scan.denied": {
        "zh-CN": "未获准使用相机，请手动输入运单号（可在浏览器设置中允许相机）",
        "en": "The camera was not allowed; type the waybill number (allow the camera in the browser's settings)",
    },
    "courier.scan.no_camera": {
        "zh-CN": "无法使用相机，请手动输入运单号",
        "en": "No camera can be used; type the waybill number",
    },
    "courier.pieces": {"zh-CN": "件数", "en": "Pieces"},
    "courier.pieces.invalid": {"zh-CN": "件数须为 1 到 999", "en": "Pieces must be 1 to 999"},
    "courier.weight": {"zh-CN": "重量（公斤，选填）", "en": "Weight (kg, optional)"},
    "courier.weight.invalid": {
        "zh-CN": "重量须大于 0，且不超过 1000 公斤",
        "en": "The weight must be more than 0 and at most 1000 kg",
    },
    "courier.repacked": {"zh-CN": "已重新包装", "en": "Re-packed"},
    "courier.photo": {"zh-CN": "包裹照片（选填）", "en": "Parcel photo (optional)"},
    "courier.photo.unreadable": {
        "zh-CN": "无法读取这张照片，请重拍",
        "en": "That photo cannot be read; take it again",
    },
    "courier.photo.failed": {"zh-CN": "照片上传失败：{message}", "en": "The photo did not upload: {message}"},
    "courier.error.network": {"zh-CN": "网络不通，请稍后重试", "en": "No connection; try again"},
    "courier.error.conflict": {
        "zh-CN": "订单状态已变（可能已被取消或改派）",
        "en": "This pickup has changed (cancelled or reassigned?)",
    },
    "courier.error.other": {"zh-CN": "操作失败：{message}", "en": "Could not do that: {message}"},
    "courier.reason.customer_absent": {"zh-CN": "客户不在", "en": "Customer not there"},
    "courier.reason.customer_unreachable": {"zh-CN": "联系不上客户", "en": "Customer unreachable"},
    "courier.reason.customer_refused": {"zh-CN": "客户拒寄", "en": "Customer refused"},
    "courier.reason.address_wrong": {"zh-CN": "地址错误", "en": "Wrong address"},
    "courier.reason.parcel_not_ready": {"zh-CN": "物品未备好", "en": "Parcel not ready"},
    "courier.reason.parcel_prohibited": {"zh-CN": "违禁物品", "en": "Prohibited item"},
    "courier.reason.packaging_unfit": {"zh-CN": "包装不合格", "en": "Packaging unfit"},
    "courier.reason.out_of_capacity": {"zh-CN": "运力不足", "en": "Out of capacity"},
    "courier.reason.other": {"zh-CN": "其他", "en": "Other"},
}


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    if query_lang:
        return "en" if query_lang.lower().startswith("en") else "zh-CN"
    if accept_language and accept_language.strip().lower().startswith("en"):
        return "en"
    return "zh-CN"


def translate(key: str, lang: str, **values: Any) -> str:
    entry = CATALOGUE.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["zh-CN"]
    return text.format(**values) if values else text
