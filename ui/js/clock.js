// Times on the charts. The API counts in UTC: its buckets start at whole UTC hours or days (Unix
// ms) and its hours of the day are UTC hours. The dashboard shows each in the browser's time zone
// where one can be (an hour bucket that starts at 00:00 UTC starts at 05:30 in India) and says
// which zone that is; a day bucket is a whole UTC day, which no local date names, so it keeps its
// UTC date and the page says when such a day starts here.

const DAY = 86_400_000;
const pad = (n) => String(n).padStart(2, "0");

/// The clock time `minutes` after midnight, "HH:MM".
const hhmm = (minutes) => `${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;

/// This zone's offset from UTC now, in minutes (India: 330).
const offsetNow = () => -new Date().getTimezoneOffset();

/// When the UTC hour of the day `hour` starts here, in minutes after midnight. Today's offset
/// stands for every day: an hour counted on the other side of a daylight-saving change is an
/// hour off, which a count by hour of the day (its dates are gone) cannot avoid.
const startHere = (hour) => (((hour * 60 + offsetNow()) % 1440) + 1440) % 1440;

/// A bucket's label: an hour by the clock time it starts at here, a day by its UTC date.
export function bucketLabel(ms, bucketMs) {
  const date = new Date(ms);
  if (bucketMs < DAY) return hhmm(date.getHours() * 60 + date.getMinutes());
  return date.toLocaleDateString(undefined, { timeZone: "UTC", month: "short", day: "numeric" });
}

/// The UTC hour of the day `hour` as the hour it is here, "05:30–06:30".
export function localHour(hour) {
  return `${hhmm(startHere(hour))}–${hhmm(startHere((hour + 1) % 24))}`;
}

/// Bar chart items for the API's rows of {hour (UTC), count}: in the order of this zone's day,
/// each labelled with the time it starts here.
export function hoursOfDay(rows) {
  return rows
    .map((row) => ({ start: startHere(row.hour), row }))
    .sort((a, b) => a.start - b.start)
    .map(({ start, row }) => ({ label: hhmm(start), tip: localHour(row.hour), value: row.count }));
}

/// Which zone the page's times are in, and for daily buckets when their UTC day starts here.
export function zoneNote(bucketMs) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "your browser's zone";
  const offset = offsetNow();
  const utc = `UTC${offset < 0 ? "−" : "+"}${hhmm(Math.abs(offset))}`;
  const days = bucketMs >= DAY ? ` Each day is a whole UTC day, which starts at ${hhmm(startHere(0))} your time.` : "";
  return `Times are in your time zone, ${zone} (${utc}).${days}`;
}
